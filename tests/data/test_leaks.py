"""Leaks across splits, unreadable and implausible images, from the facts of one read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepcovid.data.cache import FileCache, dhash
from deepcovid.data.datamodule import XrayDataModule, describe
from deepcovid.data.leaks import DataLeakError, enforce, hamming, hash_words, leak_report
from deepcovid.data.samples import DatasetLayoutError, read_manifest, scan_folders
from deepcovid.utils.files import printable
from tests.conftest import (
    CXR_DEV,
    chest_like,
    make_covidx5k,
    requires_real_data,
    save_in_mode,
)


def texture(seed: int, size: int = 64) -> np.ndarray:
    """A random smooth texture: distinct seeds give perceptually distinct images."""
    coarse = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    """A manifest dataset with one planted copy, one re-encoded copy, one shared patient, one
    unreadable file and one 8000 x 12 strip across its train/test splits."""
    rows = []
    for i in range(12):
        split = "train" if i < 8 else "test"
        label = "covid" if i % 2 else "non-covid"
        path = save_in_mode(texture(i), tmp_path / split / f"img{i}.png", "L")
        rows.append([str(path.relative_to(tmp_path)), label, split, f"p{i}"])
    shutil.copy(tmp_path / "train/img0.png", tmp_path / "test/copy.png")  # exact duplicate
    rows.append(["test/copy.png", "non-covid", "test", "p100"])
    small = Image.open(tmp_path / "train/img1.png").resize((72, 72))
    small.convert("RGB").save(tmp_path / "test/reencoded.jpg", quality=70)  # near-duplicate
    rows.append(["test/reencoded.jpg", "covid", "test", "p101"])
    rows[9][3] = "p2"  # patient p2 in train (img2) and test (img9)
    (tmp_path / "test/broken.png").write_bytes(b"this is not a png")
    rows.append(["test/broken.png", "covid", "test", "p102"])
    Image.fromarray(np.full((12, 8000), 90, np.uint8)).save(tmp_path / "train/strip.png")
    rows.append(["train/strip.png", "covid", "train", "p103"])
    frame = pd.DataFrame(rows, columns=["path", "label", "split", "patient_id"])
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


def report_of(root: Path, near: bool = True):
    table = read_manifest(root / "manifest.csv")
    facts = FileCache(root / "cache").scan(table["path"].tolist(), want_dhash=near)
    return leak_report(table, facts, near=near)


def test_dhash_tolerates_reencoding_but_separates_distinct_images() -> None:
    image = Image.fromarray(texture(0))
    reencoded = image.resize((40, 40)).point(lambda v: min(255, v + 8))
    words = hash_words([dhash(image), dhash(reencoded), dhash(Image.fromarray(texture(1)))])
    assert words.shape == (3, 4)  # 256 bits
    distance = hamming(words[:1], words)[0]
    assert distance[1] <= 16 < distance[2]


def test_report_finds_every_planted_problem(leaky: Path) -> None:
    report = report_of(leaky)
    assert report.n_images == 16
    [group] = report.exact_duplicates
    assert group["paths"] == {
        "test": [str(leaky / "test/copy.png")],
        "train": [str(leaky / "train/img0.png")],
    }
    near = {(p["train"], p["test"]) for p in report.near_duplicates}
    assert (str(leaky / "train/img1.png"), str(leaky / "test/reencoded.jpg")) in near
    assert (str(leaky / "train/img0.png"), str(leaky / "test/copy.png")) in near
    assert len(near) == 2  # the other textures are far apart
    assert report.patients_in_several_splits == {"p2": ["test", "train"]}
    assert list(report.unreadable) == [str(leaky / "test/broken.png")]
    assert "cannot decode" in report.unreadable[str(leaky / "test/broken.png")]
    assert report.implausible == {
        str(leaky / "train/strip.png"): "8000x12 px: shorter side under 64 px"
    }
    assert report.leaks == {
        "exact_duplicates": 1,
        "near_duplicates": 2,
        "patients_in_several_splits": 1,
    }
    assert report.modes["L"] == 14 and report.modes["unreadable"] == 1


def test_without_dhash_no_near_duplicate_search(leaky: Path) -> None:
    report = report_of(leaky, near=False)
    assert report.near_duplicates is None
    assert len(report.exact_duplicates) == 1 and report.patients_in_several_splits


def test_enforce_stops_or_warns(leaky: Path, caplog: pytest.LogCaptureFixture) -> None:
    report = report_of(leaky)
    with pytest.raises(DataLeakError, match="patient p2 in") as error:
        enforce(report)
    assert "data.on_leak=warn" in str(error.value) and "copy.png" in str(error.value)
    enforce(report, on_leak="warn")
    assert "strip.png: 8000x12 px" in caplog.text and "the splits leak" in caplog.text


def test_bad_files_are_described_printably(tmp_path: Path) -> None:
    name = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png")
    text = describe({name: "the file name is not valid UTF-8"})
    text.encode("utf-8")  # escaped: safe to log, print and write
    assert "caf\\udce9.png" in text and printable(name) in text


def test_an_aspect_ratio_over_three_is_implausible(tmp_path: Path) -> None:
    wide = save_in_mode(chest_like(400, 0, True)[:100], tmp_path / "wide.png", "L")
    table = pd.DataFrame({"path": [str(wide)], "label": [1], "split": ["train"],
                          "patient_id": [None], "source": [None]})  # fmt: skip
    facts = FileCache(tmp_path / "cache").scan([str(wide)])
    assert leak_report(table, facts).implausible == {str(wide): "400x100 px: aspect ratio over 3"}


@requires_real_data
def test_real_cxr_dev_has_no_leak(tmp_path: Path) -> None:
    table = read_manifest(CXR_DEV / "manifest.csv")
    facts = FileCache(tmp_path).scan(table["path"].tolist(), want_dhash=True)
    report = leak_report(table, facts, near=True)
    assert report.n_images == 411 and report.unreadable == {} and report.implausible == {}
    assert report.leaks == {}
    assert set(report.modes) == {"L", "RGB", "RGBA", "P"}


def conflict_module(root: Path) -> XrayDataModule:
    return XrayDataModule(str(root), image_size=32, batch_size=8, num_workers=0)


def test_a_symlink_with_the_other_label_is_refused(tmp_path: Path) -> None:
    root = make_covidx5k(tmp_path / "data")
    target = root / "train/covid/img000.png"
    (root / "train/non/link.png").symlink_to(target)  # the same file, now non-COVID too
    with pytest.raises(DataLeakError) as error:
        conflict_module(root).setup()
    message = str(error.value)
    assert "'conflicting_labels': 1" in message
    assert (
        f"{target} (covid, " in message and f"{root / 'train/non/link.png'} (non-covid, " in message
    )
    assert "give identical images one label" in message


def test_byte_identical_copies_with_two_labels_within_and_across_splits(tmp_path: Path) -> None:
    root = make_covidx5k(tmp_path / "data", {"train/covid": 6, "train/non": 6, "test/covid": 2,
                                             "test/non": 2})  # fmt: skip
    shutil.copy(root / "train/covid/img000.png", root / "train/non/copy.png")  # same split
    shutil.copy(root / "train/covid/img001.png", root / "test/non/copy.png")  # across splits
    table = scan_folders(root)
    facts = FileCache(tmp_path / "cache").scan(table["path"].tolist())
    report = leak_report(table, facts)
    assert report.leaks["conflicting_labels"] == 2
    files = [{(f["path"], f["label"]) for f in g["files"]} for g in report.conflicting_labels]
    assert {(str(root / "train/covid/img000.png"), "covid"),
            (str(root / "train/non/copy.png"), "non-covid")} in files  # fmt: skip
    assert {(str(root / "train/covid/img001.png"), "covid"),
            (str(root / "test/non/copy.png"), "non-covid")} in files  # fmt: skip
    with pytest.raises(DataLeakError, match="identical content, both labels"):
        enforce(report)
    same = scan_folders(root).query("~path.str.contains('non/copy')")  # copies removed
    assert "conflicting_labels" not in leak_report(same, facts).leaks


def test_one_file_listed_relative_and_absolute_with_two_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative manifest (as in the README) naming one image by both spellings."""
    image = save_in_mode(chest_like(64, 0, True), tmp_path / "data/train/a.png", "L")
    save_in_mode(chest_like(64, 1, False), tmp_path / "data/train/b.png", "L")
    manifest = tmp_path / "data/manifest.csv"
    manifest.write_text(f"path,label\ntrain/a.png,covid\n{image},non-covid\ntrain/b.png,non\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetLayoutError) as error:
        read_manifest(Path("data/manifest.csv"))
    message = str(error.value)
    assert f"{image} is listed more than once (lines 2, 3)" in message
    assert f"'train/a.png' as 'covid', '{image}' as 'non-covid'" in message


def test_a_manifest_row_through_a_symlink_is_the_same_file(tmp_path: Path) -> None:
    image = save_in_mode(chest_like(64, 0, True), tmp_path / "a.png", "L")
    (tmp_path / "link.png").symlink_to(image)
    (tmp_path / "manifest.csv").write_text("path,label\na.png,covid\nlink.png,non-covid\n")
    with pytest.raises(DatasetLayoutError, match=r"listed more than once \(lines 2, 3\)"):
        read_manifest(tmp_path / "manifest.csv")
