from pathlib import Path

import pytest

from tests.dicom.conftest import write_cr
from tests.dicom.dciodvfy import dciodvfy_available, parse_dciodvfy, verify

# What dciodvfy printed for /work/shared/data/dicom/siim-chest-monochrome1.dcm
SIIM_OUTPUT = """\
Warning - Missing attribute or value that would be needed to build DICOMDIR - Study ID
Warning - Value dubious for this VR - (0x0010,0x0010) PN Patient's Name  PN [1] = <16d7f894> - \
Retired Person Name form
Error - Value invalid for this VR - (0x0010,0x1010) AS Patient's Age  AS [1] = <62> - Length \
invalid for this VR = 2, expected == 4
Error - Dicom dataset contains invalid data values for Value Representations
SCImage
Warning - Attribute is not present in standard DICOM IOD - (0x0018,0x5101) CS View Position
"""


def test_output_splits_into_errors_and_warnings() -> None:
    verification = parse_dciodvfy(Path("x.dcm"), SIIM_OUTPUT)
    assert len(verification.errors) == 2 and len(verification.warnings) == 3
    assert "Patient's Age" in verification.errors[0]
    assert not verification.ok
    assert parse_dciodvfy(Path("x.dcm"), "SCImage\nWarning - dubious\n").ok


def test_abort_counts_as_an_error() -> None:
    assert not parse_dciodvfy(Path("x"), 'Abort - File open for read failed - "x"\n').ok


@pytest.mark.skipif(
    not dciodvfy_available(), reason="dciodvfy absent (apt-get install dicom3tools)"
)
def test_real_run_on_a_file_with_a_bad_age(tmp_path: Path) -> None:
    bad = verify(write_cr(tmp_path / "bad.dcm", patient_age="45"))
    good = verify(write_cr(tmp_path / "good.dcm", patient_age="045Y"))
    assert [e for e in bad.errors if "Patient's Age" in e] and good.ok, good.output
