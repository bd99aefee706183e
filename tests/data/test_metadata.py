"""Confounder metadata: view, sex, age (band), institution, manufacturer, from manifests and
DICOM headers."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from deepcovid.data.metadata import age_band, age_of, sex_of, view_of
from deepcovid.data.samples import DatasetLayoutError, read_manifest, scan_folders
from tests.conftest import CXR_DEV, SHARED_DATA, chest_like, requires_real_data, save_in_mode

SIIM = SHARED_DATA / "dicom" / "siim-chest-monochrome2.dcm"
requires_dicom = pytest.mark.skipif(not SIIM.is_file(), reason="../shared/data/dicom is absent")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("PA", ("PA", False)), (" posteroanterior ", ("PA", False)), ("ap", ("AP", False)),
     ("AP Supine", ("AP", True)), ("AP_supine", ("AP", True)), ("L", ("LL", False)),
     ("lateral", ("LL", False)), ("RL", ("RL", False)), ("CT", None), ("frontal", None)],
)  # fmt: skip
def test_view_names_normalised_to_view_position(name: str, expected) -> None:
    assert view_of(name) == expected


def test_sex_and_age_normalised() -> None:
    assert [sex_of(v) for v in ("male", "F", "Female", "o", "x")] == ["M", "F", "F", "O", None]
    assert age_of("045Y") == 45 and age_of("62") == 62 and age_of(" 70.5 ") == 70.5
    assert age_of("006M") == 0.5 and age_of("014D") == pytest.approx(0.04, abs=0.005)
    assert [age_of(v) for v in ("sixty", "-3", "200", "45 years")] == [None] * 4
    assert [age_band(a) for a in (0, 39.9, 40, 59.99, 60, 79, 80, 101, None)] == [
        "0–39", "0–39", "40–59", "40–59", "60–79", "60–79", "80+", "80+", None
    ]  # fmt: skip


def images(tmp_path: Path, n: int) -> list[str]:
    for i in range(n):
        save_in_mode(chest_like(16, i, i % 2 == 0), tmp_path / f"{i}.png", "L")
    return [f"{i}.png" for i in range(n)]


def test_manifest_metadata_columns(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "path": images(tmp_path, 4),
            "label": ["covid", "non-covid"] * 2,
            "view": ["PA", "AP supine", "", "lateral"],
            "sex": ["male", "F", "", "o"],
            "age": ["045Y", "80", "", "39.5"],
            "institution": ["A", " B ", "", "A"],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    table = read_manifest(tmp_path / "m.csv")
    assert table["view"].tolist() == ["PA", "AP", None, "LL"]
    assert table["supine"].tolist() == [False, True, None, False]
    assert table["sex"].tolist() == ["M", "F", None, "O"]
    assert table["age"].tolist()[:2] == [45.0, 80.0] and pd.isna(table["age"].iloc[2])
    assert table["age_band"].tolist() == ["40–59", "80+", None, "0–39"]
    assert table["institution"].tolist() == ["A", "B", None, "A"]
    assert table["manufacturer"].isna().all()


def test_unknown_metadata_values_refused_with_their_lines(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "path": images(tmp_path, 4),
            "label": ["covid", "non-covid"] * 2,
            "view": ["PA", "CT", "AP", "axial"],
            "sex": ["M", "F", "unknown", "M"],
            "age": ["45", "forty", "50", "50"],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DatasetLayoutError) as error:
        read_manifest(tmp_path / "m.csv")
    message = str(error.value)
    assert "unknown view value(s) ['CT', 'axial'] at lines 3, 5: use PA, AP, AP supine" in message
    assert "unknown sex value(s) ['unknown'] at line 4: use M, F, O" in message
    assert "unknown age value(s) ['forty'] at line 3: use years" in message
    assert "leave it empty when not known" in message


@requires_real_data
def test_cxr_dev_manifest_views() -> None:
    table = read_manifest(CXR_DEV / "manifest.csv")
    assert table["view"].value_counts().to_dict() == {"PA": 239, "AP": 172}
    assert not table["supine"].any()


def dicom_copy(target: Path, **header: str) -> Path:
    dataset = pydicom.dcmread(SIIM)
    for keyword, value in header.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    target.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(target)
    return target


@requires_dicom
def test_dicom_header_fills_metadata(tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    dicom_copy(root / "covid" / "a.dcm", ViewPosition="AP", PatientSex="F", PatientAge="045Y",
               Manufacturer="Acme", InstitutionName="General")  # fmt: skip
    dicom_copy(root / "non" / "b.dcm", ViewPosition=None, PatientSex=None, PatientAge=None)
    dicom_copy(root / "non" / "c.dcm", ViewPosition="XYZ", PatientAge="089Y")
    with caplog.at_level(logging.WARNING):
        table = scan_folders(root)
    rows = {Path(row["path"]).name: row for row in table.to_dict("records")}
    a, b, c = rows["a.dcm"], rows["b.dcm"], rows["c.dcm"]
    assert (a["view"], a["sex"], a["age"], a["age_band"]) == ("AP", "F", 45.0, "40–59")
    assert (a["manufacturer"], a["institution"]) == ("Acme", "General")
    assert all(pd.isna(b[k]) for k in ("view", "sex", "age", "age_band", "manufacturer"))
    assert pd.isna(c["view"]) and c["age_band"] == "80+"
    assert "c.dcm: ViewPosition 'XYZ'" in caplog.text


@requires_dicom
def test_manifest_values_win_over_the_header(tmp_path: Path) -> None:
    dicom_copy(tmp_path / "a.dcm", ViewPosition="AP", PatientSex="F")
    dicom_copy(tmp_path / "b.dcm", ViewPosition="PA", PatientSex="M")
    pd.DataFrame(
        {"path": ["a.dcm", "b.dcm"], "label": ["covid", "non"], "view": ["PA", ""]}
    ).to_csv(tmp_path / "m.csv", index=False)
    table = read_manifest(tmp_path / "m.csv")
    assert table["view"].tolist() == ["PA", "PA"]
    assert table["sex"].tolist() == ["F", "M"]
