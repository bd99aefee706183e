"""write_dicom_results on synthetic CRs and on the two real SIIM files, read back with pydicom
and highdicom, and checked with dciodvfy where dicom3tools is installed."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from deepcovid.dicom import AlgorithmInfo, DicomResults, InvalidSourceError, write_dicom_results
from deepcovid.dicom.codes import ABSENT, CERTAINTY_OF_FINDING, COVID_19, PRESENT, UNITLESS
from deepcovid.dicom.repair import repair_header
from deepcovid.dicom.structured_report import Classification, structured_report
from tests.conftest import requires_real_data
from tests.dicom.conftest import REAL_DICOMS, write_cr
from tests.dicom.dciodvfy import dciodvfy_available, verify

ALGORITHM = AlgorithmInfo(weights_sha256="0123456789abcdef" * 4)
YOUDEN = "max Youden's J on val"
requires_dciodvfy = pytest.mark.skipif(
    not dciodvfy_available(), reason="dciodvfy absent (apt-get install dicom3tools)"
)


def write(source: Path, out: Path, prob: float = 0.87, overlay: np.ndarray | None = None):
    return write_dicom_results(source, prob, 0.42, YOUDEN, overlay, ALGORITHM, out)


def check_report(results: DicomResults, source: Path, prob: float, call) -> None:
    """The SR read back: coded finding, measurement, call, algorithm, references, patient."""
    original = pydicom.dcmread(source, stop_before_pixels=True)
    sr = hd.sr.srread(results.report)
    assert isinstance(sr, hd.sr.ComprehensiveSR)
    assert sr.SOPInstanceUID == results.report_uid
    assert sr.StudyInstanceUID == original.StudyInstanceUID
    assert sr.SeriesInstanceUID != original.SeriesInstanceUID
    assert (sr.PatientID, str(sr.PatientName)) == (original.PatientID, str(original.PatientName))
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == (
        "COMPLETE",
        "UNVERIFIED",
        "PRELIMINARY",
    )
    [group] = sr.content.get_image_measurement_groups()
    assert group.finding_type == COVID_19
    [measurement] = group.get_measurements(name=CERTAINTY_OF_FINDING)
    assert measurement.value == pytest.approx(prob)
    assert measurement.unit == UNITLESS
    [evaluation] = group.get_qualitative_evaluations(name=COVID_19)
    assert evaluation.value == call
    items = group[0].ContentSequence  # the group's container and its content items
    parameters = [item.value for item in items.find(codes.DCM.AlgorithmParameters)]
    assert parameters[:3] == [
        f"weights sha256: {ALGORITHM.weights_sha256}",
        f"operating point: {YOUDEN}",
        "threshold: 0.42",
    ]
    assert [item.value for item in items.find(codes.DCM.AlgorithmName)] == ["deepcovid"]
    [image] = group.source_images
    assert image.referenced_sop_class_uid == original.SOPClassUID
    assert image.referenced_sop_instance_uid == original.SOPInstanceUID
    [study] = sr.CurrentRequestedProcedureEvidenceSequence
    [series] = study.ReferencedSeriesSequence
    [instance] = series.ReferencedSOPSequence
    assert study.StudyInstanceUID == original.StudyInstanceUID
    assert series.SeriesInstanceUID == original.SeriesInstanceUID
    assert instance.ReferencedSOPClassUID == original.SOPClassUID
    assert instance.ReferencedSOPInstanceUID == original.SOPInstanceUID


def check_overlay(results: DicomResults, source: Path, overlay: np.ndarray) -> None:
    original = pydicom.dcmread(source, stop_before_pixels=True)
    sc = pydicom.dcmread(results.overlay)
    report = pydicom.dcmread(results.report, stop_before_pixels=True)
    assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert sc.SOPInstanceUID == results.overlay_uid
    assert sc.StudyInstanceUID == original.StudyInstanceUID
    assert len({sc.SeriesInstanceUID, report.SeriesInstanceUID, original.SeriesInstanceUID}) == 3
    assert sc.PhotometricInterpretation == "RGB"
    np.testing.assert_array_equal(sc.pixel_array, overlay)
    [reference] = sc.SourceImageSequence
    assert reference.ReferencedSOPInstanceUID == original.SOPInstanceUID
    assert (sc.PatientID, sc.PatientSex) == (original.PatientID, original.PatientSex)


def check_dciodvfy(*paths: Path) -> None:
    """ERRORS from dciodvfy fail the test; warnings do not."""
    if not dciodvfy_available():
        return
    for path in paths:
        verification = verify(path)
        assert verification.ok, f"{path.name}:\n{verification.output}"


@pytest.mark.parametrize("orientation", [None, ["L", "F"]], ids=["no-orientation", "oriented"])
def test_synthetic_cr_gives_valid_sr_and_overlay(
    tmp_path: Path, overlay: np.ndarray, orientation: list[str] | None
) -> None:
    source = write_cr(tmp_path / "cr.dcm", patient_age="45", orientation=orientation)
    results = write(source, tmp_path / "out", overlay=overlay)
    assert results.report == tmp_path / "out" / "cr.sr.dcm"
    assert results.overlay == tmp_path / "out" / "cr.overlay.dcm"
    assert [(r.keyword, r.old, r.new) for r in results.repairs] == [("PatientAge", "45", "045Y")]
    check_report(results, source, 0.87, PRESENT)
    check_overlay(results, source, overlay)
    for path in (results.report, results.overlay):
        assert pydicom.dcmread(path, stop_before_pixels=True).PatientAge == "045Y"
    check_dciodvfy(results.report, results.overlay)
    json.dumps(results.to_dict())  # the record of repairs is JSON-ready


@pytest.mark.parametrize(("prob", "call"), [(0.42, PRESENT), (0.4199, ABSENT), (0.0, ABSENT)])
def test_call_is_covid_at_or_above_the_threshold(tmp_path: Path, prob: float, call) -> None:
    source = write_cr(tmp_path / "cr.dcm", patient_age="045Y")
    results = write(source, tmp_path / "out", prob=prob)
    assert results.overlay is None and results.repairs == ()
    check_report(results, source, prob, call)


@requires_dciodvfy
def test_dciodvfy_catches_the_age_that_repair_fixes(tmp_path: Path) -> None:
    """Without the repair the SR inherits the source's error: the check can fail."""
    source = write_cr(tmp_path / "cr.dcm", patient_age="45")
    assert any("Patient's Age" in error for error in verify(source).errors)
    header = pydicom.dcmread(source, stop_before_pixels=True)
    call = Classification(0.5, 0.42, YOUDEN)
    unrepaired = structured_report(header, call, ALGORITHM, 9001)
    unrepaired.save_as(tmp_path / "unrepaired.dcm", enforce_file_format=True)
    assert any("Patient's Age" in error for error in verify(tmp_path / "unrepaired.dcm").errors)
    repaired = structured_report(repair_header(header, "cr.dcm")[0], call, ALGORITHM, 9001)
    repaired.save_as(tmp_path / "repaired.dcm", enforce_file_format=True)
    assert verify(tmp_path / "repaired.dcm").ok


@requires_real_data
@pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent the intended person")
@pytest.mark.parametrize("source", REAL_DICOMS, ids=lambda path: path.stem)
def test_real_siim_dicom(tmp_path: Path, source: Path) -> None:
    rows = pydicom.dcmread(source, stop_before_pixels=True).Rows
    overlay = np.random.default_rng(1).integers(0, 256, (rows, rows, 3), dtype=np.uint8)
    results = write(source, tmp_path, overlay=overlay)
    assert [(r.keyword, r.old, r.new) for r in results.repairs] == [("PatientAge", "62", "062Y")]
    check_report(results, source, 0.87, PRESENT)
    check_overlay(results, source, overlay)
    check_dciodvfy(results.report, results.overlay)


def test_non_dicom_source_is_refused_naming_the_file(tmp_path: Path) -> None:
    source = tmp_path / "xray.dcm"
    source.write_bytes(b"not a dicom file")
    with pytest.raises(InvalidSourceError, match="xray.dcm: not a readable DICOM file"):
        write(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("prob", "threshold", "operating_point", "overlay", "message"),
    [
        (1.2, 0.5, YOUDEN, None, "prob_covid must be a probability"),
        (0.5, float("nan"), YOUDEN, None, "threshold must be a probability"),
        (0.5, 0.5, " ", None, "operating_point must name"),
        (0.5, 0.5, YOUDEN, np.zeros((8, 8, 3), np.float32), "uint8 RGB array"),
        (0.5, 0.5, YOUDEN, np.zeros((8, 8), np.uint8), "uint8 RGB array"),
    ],
)
def test_bad_arguments_write_nothing(
    tmp_path: Path, prob, threshold, operating_point, overlay, message
) -> None:
    source = write_cr(tmp_path / "cr.dcm")
    with pytest.raises(ValueError, match=message):
        write_dicom_results(
            source, prob, threshold, operating_point, overlay, ALGORITHM, tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()
