"""Standard DICOM results for DICOM inputs: a Comprehensive SR (TID 1500) with the coded
finding and P(COVID), and a Secondary Capture of the heatmap overlay, in the source's study."""

from deepcovid.dicom.repair import InvalidSourceError, Repair
from deepcovid.dicom.results import DicomResults, write_dicom_results
from deepcovid.dicom.structured_report import AlgorithmInfo

__all__ = [
    "AlgorithmInfo",
    "DicomResults",
    "InvalidSourceError",
    "Repair",
    "write_dicom_results",
]
