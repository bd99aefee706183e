"""The heatmap overlay as a Secondary Capture image in the source's study, in a new series.

Secondary Capture of the rendered RGB overlay is the one result object every PACS stores and
every viewer shows, with no support for presentation states or parametric maps needed. A
Parametric Map would keep the raw heatmap values, but few clinical viewers display it, and a
GSPS can only draw graphics, not a colour heatmap.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from deepcovid.dicom.structured_report import AlgorithmInfo, new_series_attributes

DERIVATION = "heatmap of the regions that drive P(COVID), blended over the source image"
# highdicom requires a patient orientation for PATIENT coordinates; the source's own value
# (often empty: Type 2) replaces this placeholder once the image is built.
PLACEHOLDER_ORIENTATION = ("L", "F")


def check_overlay(overlay_rgb: np.ndarray) -> np.ndarray:
    """The overlay as a contiguous (rows, columns, 3) uint8 array, or a ValueError saying what
    is wrong with it."""
    overlay = np.asarray(overlay_rgb)
    if overlay.ndim != 3 or overlay.shape[2] != 3 or overlay.dtype != np.uint8:
        raise ValueError(
            f"overlay_rgb must be a (rows, columns, 3) uint8 RGB array, got shape "
            f"{overlay.shape} and dtype {overlay.dtype}"
        )
    return np.ascontiguousarray(overlay)


def build_overlay(
    source: Dataset, overlay_rgb: np.ndarray, algorithm: AlgorithmInfo, series_number: int
) -> hd.sc.SCImage:
    """An SC image of ``overlay_rgb`` with the patient and study attributes of ``source`` (a
    header whose values are valid), referencing ``source`` as the image it derives from."""
    overlay = check_overlay(overlay_rgb)
    same_grid = overlay.shape[:2] == (source.get("Rows"), source.get("Columns"))
    spacing = source.get("PixelSpacing")
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=overlay,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        **new_series_attributes(algorithm, series_number, "heatmap overlay"),
        patient_orientation=PLACEHOLDER_ORIENTATION,
        pixel_spacing=tuple(spacing) if same_grid and spacing else None,
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    image.copy_patient_and_study_information(source)
    image.PatientOrientation = source.get("PatientOrientation", "")
    if "BodyPartExamined" in source:  # decides whether Laterality (Type 2C) is required
        image.BodyPartExamined = source.BodyPartExamined
    image.DerivationDescription = DERIVATION
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    image.SourceImageSequence = [reference]
    return image
