"""The lung mask an image was read with as a DICOM Segmentation in the source's study.

One BINARY segment "Lung" (SNOMED CT 91723000 "Anatomical Structure" / 39607008 "Lung"), on the
source image's grid (the mask resampled, nearest, to its Rows × Columns), referencing the
source image. A mask from deepcovid's segmenter is AUTOMATIC with the segmenter identified
(name, version, family Artificial Intelligence, weights sha256 as a parameter); a given or V7
Labs mask (human annotations) is MANUAL, with no algorithm.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from deepcovid.dicom.codes import ANATOMICAL_STRUCTURE, ARTIFICIAL_INTELLIGENCE, LUNG
from deepcovid.dicom.structured_report import AlgorithmInfo, new_series_attributes

SEGMENT_LABEL = "Lung"
AUTOMATIC_ORIGIN = "segmenter"  # the provider's origin of a mask made by the shipped segmenter


@dataclass(frozen=True)
class LungMaskSource:
    """A bool lung mask, where it came from (the provider's origin: given, folder, v7 or
    segmenter) and, for the segmenter's, the segmenter's identity."""

    mask: np.ndarray
    origin: str
    segmenter: AlgorithmInfo | None = None

    def __post_init__(self) -> None:
        if self.mask.ndim != 2:
            raise ValueError(f"the lung mask must be 2-D (rows, columns), got {self.mask.shape}")
        if self.origin == AUTOMATIC_ORIGIN and self.segmenter is None:
            raise ValueError("a segmenter's mask needs the segmenter (AlgorithmInfo) to name")


def on_source_grid(mask: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``mask`` as bool on a ``rows × columns`` grid (nearest resampling when it differs)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == (rows, columns):
        return mask
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.resize((columns, rows), Image.Resampling.NEAREST)) > 0


def segment_description(lungs: LungMaskSource) -> hd.seg.SegmentDescription:
    """Segment 1, "Lung": automatic with the segmenter named, or manual."""
    algorithm = None
    kind = hd.seg.SegmentAlgorithmTypeValues.MANUAL
    if lungs.origin == AUTOMATIC_ORIGIN:
        kind = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        algorithm = hd.AlgorithmIdentificationSequence(
            name=lungs.segmenter.name,
            version=lungs.segmenter.version,
            family=ARTIFICIAL_INTELLIGENCE,
            parameters={"weights sha256": lungs.segmenter.weights_sha256},
        )
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=ANATOMICAL_STRUCTURE,
        segmented_property_type=LUNG,
        algorithm_type=kind,
        algorithm_identification=algorithm,
    )


def grid_header(source: Dataset) -> Dataset:
    """The header the SEG's geometry is taken from. A projection radiograph (no Frame of
    Reference) with Pixel Spacing would give a Pixel Measures Sequence without Slice Thickness,
    which is valid DICOM but which highdicom 0.28 cannot read back (``segread`` raises); the
    SEG is on the source's grid and references it, so its spacing is the source's."""
    if "FrameOfReferenceUID" in source or "PixelSpacing" not in source:
        return source
    header = copy.deepcopy(source)
    del header.PixelSpacing
    return header


def build_segmentation(
    source: Dataset, lungs: LungMaskSource, algorithm: AlgorithmInfo, series_number: int
) -> hd.seg.Segmentation:
    """A SEG of ``lungs`` on the grid of ``source`` (a header whose values are valid), in its
    study, in a new series; ``algorithm`` (the classifier) is the device that wrote it."""
    mask = on_source_grid(lungs.mask, int(source.Rows), int(source.Columns))
    segmentation = hd.seg.Segmentation(
        source_images=[grid_header(source)],
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment_description(lungs)],
        **new_series_attributes(algorithm, series_number, f"lung mask ({lungs.origin})"),
        device_serial_number=algorithm.device_uid,
        omit_empty_frames=False,
    )
    # Type 2C where the image has no Image Orientation/Position (projection radiographs); the
    # source's own value, often empty.
    if "ImageOrientationPatient" not in segmentation:
        segmentation.PatientOrientation = source.get("PatientOrientation", "")
    return segmentation
