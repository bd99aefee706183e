from pathlib import Path

import pydicom
import pytest

from deepcovid.dicom.repair import (
    InvalidSourceError,
    repair_header,
    repaired_age,
    repaired_date,
    repaired_time,
)
from tests.dicom.conftest import write_cr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("62", "062Y"),
        ("62Y", "062Y"),
        ("5 m", "005M"),
        ("007D", "007D"),
        ("1234", None),
        ("", None),
    ],
)
def test_age_without_unit_is_years(value: str, expected: str | None) -> None:
    assert repaired_age(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-04-15", "20200415"),
        ("2020.04.15", "20200415"),
        ("2020-13-01", None),
        ("15/04/2020", None),
    ],
)
def test_separated_dates_are_repaired_only_when_real(value: str, expected: str | None) -> None:
    assert repaired_date(value) == expected


def test_times_lose_their_colons() -> None:
    assert repaired_time("10:15:00.25") == "101500.25"
    assert repaired_time("10:15") == "1015"
    assert repaired_time("10h15") is None


def test_header_repairs_are_recorded_and_the_source_is_untouched(tmp_path: Path) -> None:
    path = write_cr(tmp_path / "cr.dcm", patient_age="62", PatientSex="f", StudyDate="15/04/2020")
    source = pydicom.dcmread(path, stop_before_pixels=True)
    header, repairs = repair_header(source, str(path))
    changes = {r.keyword: (r.old, r.new, r.action) for r in repairs}
    assert changes == {
        "PatientAge": ("62", "062Y", "repaired"),
        "PatientSex": ("f", "F", "repaired"),
        "StudyDate": ("15/04/2020", None, "dropped"),
    }
    assert (header.PatientAge, header.PatientSex, header.StudyDate) == ("062Y", "F", "")
    assert (source.PatientAge, source.PatientSex) == ("62", "f")
    assert all(r.reason for r in repairs)
    assert "062Y" in str(next(r for r in repairs if r.keyword == "PatientAge"))


def test_valid_header_needs_no_repair(tmp_path: Path) -> None:
    source = pydicom.dcmread(write_cr(tmp_path / "cr.dcm", patient_age="045Y"))
    assert repair_header(source, "cr.dcm")[1] == []


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_invalid_uid_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = write_cr(tmp_path / "cr.dcm", StudyInstanceUID="1.2.03.x")
    with pytest.raises(InvalidSourceError, match=r"cr\.dcm: StudyInstanceUID '1\.2\.03\.x'"):
        repair_header(pydicom.dcmread(path), str(path))
