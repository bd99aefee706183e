"""Write deepcovid's result for one DICOM radiograph as DICOM objects a PACS stores.

Per source image: a Comprehensive SR (``<stem>.sr.dcm``) with the coded finding, P(COVID), the
operating point and the call; when an overlay is given, a Secondary Capture of it
(``<stem>.overlay.dcm``); when a lung mask is given, a Segmentation of it (``<stem>.seg.dcm``,
:mod:`deepcovid.dicom.segmentation`), listed in the SR's evidence. All join the source's study
in new series, copy its patient and study attributes (invalid values repaired or dropped first,
see :mod:`deepcovid.dicom.repair`) and reference its Study/Series/SOP Instance UIDs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from deepcovid.dicom.repair import InvalidSourceError, Repair, repair_header
from deepcovid.dicom.secondary_capture import build_overlay, check_overlay
from deepcovid.dicom.segmentation import LungMaskSource, build_segmentation
from deepcovid.dicom.structured_report import (
    AlgorithmInfo,
    Classification,
    NotAssessed,
    structured_report,
)
from deepcovid.utils.files import atomic_path, printable

log = logging.getLogger(__name__)

# Series numbers of the result series: far above an acquisition's, so viewers list them last.
SR_SERIES_NUMBER = 9001
OVERLAY_SERIES_NUMBER = 9002
SEGMENTATION_SERIES_NUMBER = 9003
REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class DicomResults:
    """What :func:`write_dicom_results` wrote for one source, and what it changed."""

    source: Path
    report: Path
    report_uid: str
    overlay: Path | None
    overlay_uid: str | None
    repairs: tuple[Repair, ...]
    segmentation: Path | None = None
    segmentation_uid: str | None = None
    lung_mask_origin: str | None = None

    def to_dict(self) -> dict:
        return {
            "source": str(self.source),
            "report": str(self.report),
            "report_uid": self.report_uid,
            "overlay": None if self.overlay is None else str(self.overlay),
            "overlay_uid": self.overlay_uid,
            "segmentation": None if self.segmentation is None else str(self.segmentation),
            "segmentation_uid": self.segmentation_uid,
            "lung_mask_origin": self.lung_mask_origin,
            "repairs": [repair.to_dict() for repair in self.repairs],
        }


def read_source_header(source: Path) -> Dataset:
    """The source's header (no pixels), or InvalidSourceError naming the file and the fix."""
    try:
        header = pydicom.dcmread(source, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError) as error:
        raise InvalidSourceError(
            f"{printable(source)}: not a readable DICOM file ({error}); DICOM results can "
            "only be written for DICOM inputs."
        ) from error
    missing = [keyword for keyword in REQUIRED if keyword not in header]
    if missing:
        raise InvalidSourceError(
            f"{printable(source)}: lacks {', '.join(missing)}, so results cannot reference "
            "it; re-export the image from the PACS."
        )
    return header


def save(dataset: Dataset, path: Path) -> Path:
    with atomic_path(path) as partial:
        dataset.save_as(partial, enforce_file_format=True)
    return path


def write_dicom_results(
    source: str | Path,
    prob_covid: float | None,
    threshold: float,
    operating_point: str,
    overlay_rgb: np.ndarray | None,
    algorithm: AlgorithmInfo,
    output_dir: str | Path,
    name: str | None = None,
    scope_reason: str = "",
    lungs: LungMaskSource | None = None,
) -> DicomResults:
    """Write the SR (and the overlay SC, unless ``overlay_rgb`` is None) for ``source`` as
    ``<name>.sr.dcm`` (and ``<name>.overlay.dcm``; ``name`` defaults to the source's stem).

    ``operating_point`` names where ``threshold`` comes from (e.g. "max Youden's J on val");
    the call is COVID when ``prob_covid >= threshold``. ``overlay_rgb`` is a (rows, columns, 3)
    uint8 array. With a ``scope_reason`` (the source is not a frontal chest radiograph,
    :mod:`deepcovid.scope`) the SR says "not assessed" and why, with no P(COVID) and no call;
    ``prob_covid`` is then ignored. With ``lungs``, the lung mask the image was read with is
    written as ``<name>.seg.dcm`` and named in the SR's evidence. Each repair of the source's
    header is logged as a warning and returned. Raises ValueError (InvalidSourceError for the
    source) before writing anything.
    """
    source, output_dir = Path(source), Path(output_dir)
    result = (
        NotAssessed(scope_reason, operating_point, float(threshold))
        if scope_reason
        else Classification(float(prob_covid), float(threshold), operating_point)
    )
    if overlay_rgb is not None:
        check_overlay(overlay_rgb)
    header, repairs = repair_header(read_source_header(source), printable(source))
    for repair in repairs:
        log.warning("%s: %s", printable(source), repair)
    try:
        segmentation = (
            None
            if lungs is None
            else build_segmentation(header, lungs, algorithm, SEGMENTATION_SERIES_NUMBER)
        )
        evidence = [] if segmentation is None else [segmentation]
        report = structured_report(header, result, algorithm, SR_SERIES_NUMBER, evidence)
        overlay = (
            None
            if overlay_rgb is None
            else build_overlay(header, overlay_rgb, algorithm, OVERLAY_SERIES_NUMBER)
        )
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise InvalidSourceError(
            f"{printable(source)}: cannot build DICOM results from its header "
            f"({type(error).__name__}: {error})"
        ) from error
    name = source.stem if name is None else name
    report_path = save(report, output_dir / f"{name}.sr.dcm")
    overlay_path = None if overlay is None else save(overlay, output_dir / f"{name}.overlay.dcm")
    seg_path = None if segmentation is None else save(segmentation, output_dir / f"{name}.seg.dcm")
    return DicomResults(
        source=source,
        report=report_path,
        report_uid=str(report.SOPInstanceUID),
        overlay=overlay_path,
        overlay_uid=None if overlay is None else str(overlay.SOPInstanceUID),
        repairs=tuple(repairs),
        segmentation=seg_path,
        segmentation_uid=None if segmentation is None else str(segmentation.SOPInstanceUID),
        lung_mask_origin=None if lungs is None else lungs.origin,
    )
