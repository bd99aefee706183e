from pathlib import Path

import pydicom
import pytest

from deepcovid.dicom import AlgorithmInfo, write_dicom_results
from tests.dicom.conftest import write_cr
from tests.dicom.sr_text import render_sr_text


def test_dump_shows_finding_measurement_call_and_evidence(tmp_path: Path) -> None:
    source = write_cr(tmp_path / "cr.dcm", patient_age="045Y")
    algorithm = AlgorithmInfo(weights_sha256="e" * 64)
    results = write_dicom_results(source, 0.25, 0.4, "fixed", None, algorithm, tmp_path)
    text = render_sr_text(results.report)
    assert text == render_sr_text(pydicom.dcmread(results.report))
    original = pydicom.dcmread(source, stop_before_pixels=True)
    lines = text.splitlines()
    assert lines[0] == "Comprehensive SR Storage"
    evidence = (
        f"Evidence: study {original.StudyInstanceUID}, series {original.SeriesInstanceUID}, "
        f"Computed Radiography Image Storage {original.SOPInstanceUID}"
    )
    assert evidence in lines
    assert "CONTAINER Imaging Measurement Report (DCM 126000)" in lines
    body = "\n".join(lines)
    assert "CONTAINS CODE Finding (DCM 121071): COVID-19 (SCT 840539006)" in body
    assert "CONTAINS NUM Certainty of Finding (DCM 111012): 0.25 [1, no units]" in body
    assert "CONTAINS CODE COVID-19 (SCT 840539006): Absent (SCT 272519000)" in body
    assert "Algorithm Parameters (DCM 111002): 'threshold: 0.4'" in body


def test_dump_refuses_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a DICOM SR"):
        render_sr_text(write_cr(tmp_path / "cr.dcm", patient_age="045Y"))
