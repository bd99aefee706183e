"""The coded concepts deepcovid writes into DICOM results, and why each was chosen.

Every code here is either taken from pydicom's tables (generated from DICOM PS3.16) or was
checked against a published terminology source; none is invented.

* Finding: SNOMED CT 840539006 "Disease caused by severe acute respiratory syndrome
  coronavirus 2 (disorder)", preferred term "COVID-19". It is in the SNOMED CT International
  Edition (and the Global Patient Set), so every SNOMED-enabled PACS or reporting system can
  resolve it. 882784691000119100 "Pneumonia caused by SARS-CoV-2" would say more (the
  radiograph shows the pneumonia), but it belongs to the US Edition (namespace 1000119), which
  SNOMED International says to use only where that edition is deployed. The Code Meaning is the
  preferred term because the fully specified name without its tag is 65 characters, one more
  than the LO value representation of Code Meaning allows.
* Probability: DCM 111012 "Certainty of Finding", the CAD score of DICOM's CAD SR templates and
  a member of CID 6048 "CAD Operating Point Axis Label" (next to 111047 "Probability of
  cancer", which is cancer-specific). Its unit is UCUM ``1`` ("no units", CID 7181): P(COVID) is
  a dimensionless fraction in [0, 1]. ``{probability}`` is valid UCUM too, but annotations
  carry no meaning in UCUM (it equals ``1``) and it is in no DICOM context group, so receivers
  that check units against DICOM's lists would not know it; the concept name already says what
  the number is.
* Thresholded call: a qualitative evaluation whose concept is the finding and whose value is
  SNOMED CT 52101004 "Present" or 272519000 "Absent" (CID 240 "Present-Absent").
* Not assessed (an input that is not a frontal chest radiograph): no probability and no call,
  only DCM 121106 "Comment" with :data:`NOT_ASSESSED` and the reason as text.
* Procedure reported: SNOMED CT 399208008 "Plain chest X-ray (procedure)".
* Lung mask (DICOM SEG): segmented property category SNOMED CT 91723000 "Anatomical
  Structure", type 39607008 "Lung" (CID 7150 / CID 7151); the segmenter's algorithm family DCM
  123110 "Artificial Intelligence" (CID 7162).
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from deepcovid.scope.check import NOT_ASSESSED

__all__ = ["ABSENT", "CERTAINTY_OF_FINDING", "COMMENT", "COVID_19", "NOT_ASSESSED", "PRESENT"]

COVID_19 = Code("840539006", "SCT", "COVID-19")
CERTAINTY_OF_FINDING = codes.DCM.CertaintyOfFinding
UNITLESS = codes.UCUM.NoUnits
PRESENT = codes.SCT.Present
ABSENT = codes.SCT.Absent
COMMENT = codes.DCM.Comment
PLAIN_CHEST_XRAY = Code("399208008", "SCT", "Plain chest X-ray")
ANATOMICAL_STRUCTURE = codes.SCT.AnatomicalStructure
LUNG = codes.SCT.Lung
ARTIFICIAL_INTELLIGENCE = codes.cid7162.ArtificialIntelligence
