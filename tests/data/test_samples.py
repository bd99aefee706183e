from pathlib import Path

import pandas as pd
import pytest

from deepcovid.data.samples import COLUMNS, DatasetLayoutError, read_manifest, scan_folders
from tests.conftest import CXR_DEV, chest_like, requires_real_data, save_in_mode


def test_covidx5k_layout_counts_and_labels(covidx5k_shared: Path) -> None:
    table = scan_folders(covidx5k_shared)
    assert list(table.columns) == COLUMNS
    counts = table.groupby(["split", "label"]).size().to_dict()
    assert counts == {("train", 1): 12, ("train", 0): 24, ("test", 1): 6, ("test", 0): 8}
    covid_rows = table[table["path"].str.contains("/covid/")]
    assert (covid_rows["label"] == 1).all()


def test_class_folder_layout_leaves_split_open(tmp_path: Path) -> None:
    for name, positive in (("COVID", True), ("normal", False)):
        for i in range(3):
            save_in_mode(chest_like(16, i, positive), tmp_path / name / f"{i}.png", "L")
    table = scan_folders(tmp_path)
    assert table["split"].isna().all()
    assert sorted(table["label"].tolist()) == [0, 0, 0, 1, 1, 1]


def test_unknown_class_folder_is_named(tmp_path: Path) -> None:
    save_in_mode(chest_like(16, 0, True), tmp_path / "train" / "covid" / "a.png", "L")
    save_in_mode(chest_like(16, 0, True), tmp_path / "train" / "pneumonia" / "b.png", "L")
    with pytest.raises(DatasetLayoutError, match=r"\['pneumonia'\].*negative_names"):
        scan_folders(tmp_path)


def test_empty_class_folder_is_an_error(tmp_path: Path) -> None:
    save_in_mode(chest_like(16, 0, True), tmp_path / "train" / "covid" / "a.png", "L")
    (tmp_path / "train" / "non").mkdir()
    with pytest.raises(DatasetLayoutError, match="non: the class folder holds no images"):
        scan_folders(tmp_path)


def test_missing_root_says_how_to_get_data(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="data.download=true"):
        scan_folders(tmp_path / "absent")


def test_manifest_with_patients_and_relative_paths(tmp_path: Path) -> None:
    for i in range(4):
        save_in_mode(chest_like(16, i, i % 2 == 0), tmp_path / "img" / f"{i}.png", "L")
    pd.DataFrame(
        {
            "path": [f"img/{i}.png" for i in range(4)],
            "label": ["covid", "non-covid", "COVID", "normal"],
            "patient_id": ["p1", "p2", "p1", ""],
            "source": ["s", "s", "t", "t"],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    table = read_manifest(tmp_path / "m.csv")
    assert table["label"].tolist() == [1, 0, 1, 0]
    assert table["patient_id"].tolist()[:3] == ["p1", "p2", "p1"]
    assert pd.isna(table["patient_id"].iloc[3])
    assert Path(table["path"].iloc[0]) == tmp_path / "img" / "0.png"
    assert table["split"].isna().all()


def test_manifest_unknown_label_and_missing_column(tmp_path: Path) -> None:
    pd.DataFrame({"path": ["a.png"], "label": ["maybe"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DatasetLayoutError, match=r"unknown label\(s\) \['maybe'\]"):
        read_manifest(tmp_path / "m.csv")
    pd.DataFrame({"file": ["a.png"]}).to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(DatasetLayoutError, match="missing column"):
        read_manifest(tmp_path / "n.csv")


def manifest(tmp_path: Path, splits: list[str], **columns: list[str]) -> Path:
    paths = [f"{i}.png" for i in range(len(splits))]
    labels = ["covid", "non-covid"] * (len(splits) // 2) + ["covid"] * (len(splits) % 2)
    frame = pd.DataFrame({"path": paths, "label": labels, "split": splits, **columns})
    frame.to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def test_manifest_split_values_are_normalised(tmp_path: Path) -> None:
    given = ["Test", " validation", "TRAIN ", "valid", "testing", "val", ""]
    table = read_manifest(manifest(tmp_path, given))
    assert table["split"].tolist()[:6] == ["test", "val", "train", "val", "test", "val"]
    assert pd.isna(table["split"].iloc[6])  # unset: deepcovid carves it


def test_unknown_split_values_are_refused_with_their_lines(tmp_path: Path) -> None:
    path = manifest(tmp_path, ["train", "holdout", "test", "dev", "Holdout"])
    with pytest.raises(DatasetLayoutError, match="split") as error:
        read_manifest(path)
    message = str(error.value)
    assert "['Holdout', 'dev', 'holdout'] at lines 3, 5, 6" in message
    assert "train, val (valid, validation) or test (testing)" in message


def test_lung_mask_column_resolves_against_the_manifest(tmp_path: Path) -> None:
    table = read_manifest(manifest(tmp_path, ["train", "test"], lung_mask=["masks/0.png", ""]))
    assert table["lung_mask"].iloc[0] == str(tmp_path / "masks" / "0.png")
    assert pd.isna(table["lung_mask"].iloc[1])


@requires_real_data
def test_real_cxr_dev_manifest() -> None:
    table = read_manifest(CXR_DEV / "manifest.csv")
    counts = table.groupby(["split", "label"]).size().to_dict()
    assert counts == {("train", 1): 218, ("train", 0): 58, ("test", 1): 106, ("test", 0): 29}
    assert table["patient_id"].notna().all()
    assert all(Path(p).is_file() for p in table["path"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", r"manifest.csv: the file is empty\. It needs a header line path,label"),
        (b"path,label\n", r"manifest.csv: has a header but no rows\. Add one row per image"),
        (
            "path,label\nr\xe9sum\xe9.png,covid\n".encode("latin-1"),
            r"manifest.csv: is not UTF-8 text \(byte 0xe9 on line 2.*iconv -f latin1 -t utf-8",
        ),
    ],
    ids=["empty", "header-only", "latin-1"],
)
def test_unusable_manifest_is_named_with_the_fix(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(content)
    with pytest.raises(DatasetLayoutError, match=expected):
        read_manifest(manifest)


def test_folder_scan_names_every_file_it_does_not_read(tmp_path: Path, caplog) -> None:
    """Broken links, link loops, linked folders and other file types are counted, logged and
    listed by name with the reason, never dropped silently."""
    covid = tmp_path / "covid"
    for i in range(2):
        save_in_mode(chest_like(16, i, True), covid / f"{i}.png", "L")
    save_in_mode(chest_like(16, 2, False), tmp_path / "non" / "0.png", "L")
    (covid / "anim.gif").write_bytes(b"GIF89a")
    (covid / "dangling.png").symlink_to(tmp_path / "gone.png")
    (covid / "loop1.png").symlink_to(covid / "loop2.png")
    (covid / "loop2.png").symlink_to(covid / "loop1.png")
    (covid / "linked").symlink_to(tmp_path / "non")
    skipped: dict[str, str] = {}
    table = scan_folders(tmp_path, skipped=skipped)
    assert len(table) == 3
    assert {Path(p).name: why.split(" (")[0] for p, why in skipped.items()} == {
        "anim.gif": "not an image type deepcovid reads",
        "dangling.png": "a dangling symlink",
        "loop1.png": "a symlink loop",
        "loop2.png": "a symlink loop",
        "linked": "a symlink to a folder, not followed: link the image files instead",
    }
    assert "5 file(s) not read" in caplog.text and "dangling.png" in caplog.text
