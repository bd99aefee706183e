"""The coded result of one radiograph as a DICOM Comprehensive SR (TID 1500).

Template: TID 1500 "Measurement Report", the only report template highdicom writes, holding one
TID 1501 "Measurement and Qualitative Evaluation Group" about the whole image. It fits an
image-level classifier: the group names the finding (COVID-19), carries P(COVID) as a numeric
measurement and the thresholded call as a qualitative evaluation, identifies the algorithm
(TID 4019) and references the source image, and TID 1500 adds the device observer and an
image library entry (TID 1600) for the source. DICOM's Chest CAD SR (TID 4100) would be the
dedicated template for chest CAD, but neither highdicom nor most PACS write it, while TID 1500
is what quantitative-imaging viewers (e.g. OHIF, 3D Slicer) read. The SOP class is
Comprehensive SR, the one highdicom pairs with TID 1500 for 2-D images.

The document is marked complete, preliminary and unverified: an algorithm's output awaiting a
radiologist, never a final report.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from deepcovid import __version__
from deepcovid.dicom.codes import (
    ABSENT,
    CERTAINTY_OF_FINDING,
    COMMENT,
    COVID_19,
    NOT_ASSESSED,
    PLAIN_CHEST_XRAY,
    PRESENT,
    UNITLESS,
)

MANUFACTURER = "deepcovid project"
TRACKING_IDENTIFIER = "deepcovid COVID-19 classification"
# Modalities for which highdicom writes TID 1603 (Image Library Entry Descriptors for Projection
# Radiography); highdicom.sr.templates.ImageLibraryEntryDescriptors._is_projection_radiography.
PROJECTION_MODALITIES = {"CR", "DX", "IO", "MG", "PX", "RF", "RG", "XA"}


@dataclass(frozen=True)
class AlgorithmInfo:
    """What produced the result: written as the SR's algorithm identification and device."""

    weights_sha256: str
    name: str = "deepcovid"
    version: str = __version__

    def __post_init__(self) -> None:
        digest = self.weights_sha256
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(
                f"weights_sha256 must be 64 lower-case hex digits, got {digest!r}; "
                "use deepcovid.utils.files.sha256_of(weights_path)."
            )

    @property
    def device_uid(self) -> str:
        """A UID fixed by name, version and weights: the same model is the same observer."""
        return generate_uid(entropy_srcs=[self.name, self.version, self.weights_sha256])


def new_series_attributes(
    algorithm: AlgorithmInfo, series_number: int, content: str
) -> dict[str, Any]:
    """Keyword arguments of a highdicom SOP class for a result object that is the only instance
    of a new series: fresh UIDs, ``algorithm`` as manufacturer, model and software version, and
    a series description naming ``content`` as research use."""
    return {
        "series_instance_uid": hd.UID(),
        "series_number": series_number,
        "sop_instance_uid": hd.UID(),
        "instance_number": 1,
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": algorithm.name,
        "software_versions": algorithm.version,
        "series_description": f"{algorithm.name} {content} (research use)",
    }


@dataclass(frozen=True)
class Classification:
    """P(COVID) and the operating point it was called at (COVID when ``prob >= threshold``)."""

    prob_covid: float
    threshold: float
    operating_point: str

    def __post_init__(self) -> None:
        for name in ("prob_covid", "threshold"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1):
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not self.operating_point.strip():
            raise ValueError("operating_point must name where the threshold comes from")

    @property
    def is_covid(self) -> bool:
        return self.prob_covid >= self.threshold


def algorithm_identification(
    algorithm: AlgorithmInfo, operating_point: str, threshold: float
) -> hd.sr.AlgorithmIdentification:
    """TID 4019: name, version, and as parameters the weights' hash and the operating point."""
    return hd.sr.AlgorithmIdentification(
        name=algorithm.name,
        version=algorithm.version,
        parameters=[
            f"weights sha256: {algorithm.weights_sha256}",
            f"operating point: {operating_point}",
            f"threshold: {threshold!r}",
            "decision rule: COVID-19 present when P(COVID) >= threshold",
        ],
    )


def image_library_header(source: Dataset) -> Dataset:
    """The header the image library entry (TID 1600) is built from.

    For projection radiographs highdicom adds the TID 1603 descriptors, reading Patient
    Orientation (two values) and Imager Pixel Spacing unconditionally; real CR and secondary
    capture exports often have neither (the SIIM files: orientation empty, Pixel Spacing only).
    Such a source gets the general TID 1602 descriptors only (modality from the SOP class,
    rows, columns), from a copy whose Modality no longer selects the projection branch.
    """
    orientation = source.get("PatientOrientation") or []
    if source.get("Modality") not in PROJECTION_MODALITIES or (
        len(orientation) == 2 and "ImagerPixelSpacing" in source
    ):
        return source
    header = copy.deepcopy(source)
    header.Modality = "OT"
    return header


@dataclass(frozen=True)
class NotAssessed:
    """No call for an image outside the model's scope: the SR states why instead."""

    reason: str  # e.g. "DICOM Modality CT"
    operating_point: str
    threshold: float

    @property
    def text(self) -> str:
        return f"{NOT_ASSESSED} ({self.reason})"


def finding_items(
    result: Classification | NotAssessed,
) -> tuple[list[hd.sr.Measurement], list[hd.sr.QualitativeEvaluation]]:
    """P(COVID) and the call; neither when the image was not assessed."""
    if isinstance(result, NotAssessed):
        return [], []
    measurement = hd.sr.Measurement(
        name=CERTAINTY_OF_FINDING, value=float(result.prob_covid), unit=UNITLESS
    )
    call = hd.sr.QualitativeEvaluation(name=COVID_19, value=PRESENT if result.is_covid else ABSENT)
    return [measurement], [call]


def structured_report(
    source: Dataset,
    result: Classification | NotAssessed,
    algorithm: AlgorithmInfo,
    series_number: int,
    derived: Sequence[Dataset] = (),
) -> hd.sr.ComprehensiveSR:
    """The SR for ``source`` (a header whose values are valid, see ``repair.repair_header``),
    in the source's study, in a new series. A :class:`NotAssessed` result has no P(COVID) and
    no call, only a comment saying why. ``derived`` objects written with it (the lung mask's
    SEG) join its evidence (Current Requested Procedure Evidence: the source's study)."""
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=algorithm.device_uid,
            name=algorithm.name,
            manufacturer_name=MANUFACTURER,
            model_name=f"{algorithm.name} {algorithm.version}",
        ),
    )
    measurements, evaluations = finding_items(result)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=TRACKING_IDENTIFIER),
        finding_type=COVID_19,
        algorithm_id=algorithm_identification(algorithm, result.operating_point, result.threshold),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )
    if isinstance(result, NotAssessed):
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(
                name=COMMENT,
                value=result.text,
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PLAIN_CHEST_XRAY,
        imaging_measurements=[group],
        referenced_images=[image_library_header(source)],
    )
    return hd.sr.ComprehensiveSR(
        evidence=[source, *derived],
        content=report[0],
        **new_series_attributes(algorithm, series_number, "COVID-19 result"),
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
