"""The coded concepts of the DICOM results: valid as DICOM writes them, from the terminologies
every receiver resolves."""

from pydicom.sr.coding import Code

from deepcovid.dicom import codes

CODES = {name: value for name, value in vars(codes).items() if isinstance(value, Code)}


def test_every_code_fits_dicom_and_comes_from_a_shared_terminology() -> None:
    assert len(CODES) >= 10
    for name, code in CODES.items():
        assert code.scheme_designator in {"SCT", "DCM", "UCUM"}, name
        assert 0 < len(code.meaning) <= 64, name  # Code Meaning is an LO value
        assert code.value and len(code.value) <= 16, name  # Code Value is an SH value


def test_the_finding_is_the_international_snomed_covid_19_concept() -> None:
    assert (codes.COVID_19.value, codes.COVID_19.scheme_designator) == ("840539006", "SCT")
    assert "1000119" not in codes.COVID_19.value  # no US-edition extension concept
    assert codes.PRESENT.value == "52101004" and codes.ABSENT.value == "272519000"
    assert codes.UNITLESS.value == "1" and codes.CERTAINTY_OF_FINDING.value == "111012"
