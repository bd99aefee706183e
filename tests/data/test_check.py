import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepcovid.data.check import main
from deepcovid.data.leaks import (
    DataLeakError,
    build_report,
    check_before_fit,
    dhash,
    hamming,
)
from deepcovid.data.samples import read_manifest
from tests.conftest import CXR_DEV, requires_real_data, save_in_mode


def texture(seed: int, size: int = 64) -> np.ndarray:
    """A random smooth texture: distinct seeds give perceptually distinct images."""
    coarse = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    """A manifest dataset with one planted copy, one re-encoded copy, one shared patient and
    one unreadable file across its train/test splits."""
    rows = []
    for i in range(12):
        split = "train" if i < 8 else "test"
        label = "covid" if i % 2 else "non-covid"
        path = save_in_mode(texture(i), tmp_path / split / f"img{i}.png", "L")
        rows.append([str(path.relative_to(tmp_path)), label, split, f"p{i}"])
    shutil.copy(tmp_path / "train/img0.png", tmp_path / "test/copy.png")  # exact duplicate
    rows.append(["test/copy.png", "non-covid", "test", "p100"])
    small = Image.open(tmp_path / "train/img1.png").resize((48, 48))
    small.convert("RGB").save(tmp_path / "test/reencoded.jpg", quality=70)  # near-duplicate
    rows.append(["test/reencoded.jpg", "covid", "test", "p101"])
    rows[9][3] = "p2"  # patient p2 in train (img2) and test (img9)
    (tmp_path / "test/broken.png").write_bytes(b"this is not a png")
    rows.append(["test/broken.png", "covid", "test", "p102"])
    frame = pd.DataFrame(rows, columns=["path", "label", "split", "patient_id"])
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


def test_dhash_tolerates_reencoding_but_separates_distinct_images() -> None:
    image = Image.fromarray(texture(0))
    reencoded = image.resize((40, 40)).point(lambda v: min(255, v + 8))
    same = hamming(dhash(image)[None], dhash(reencoded)[None])[0, 0]
    other = hamming(dhash(image)[None], dhash(Image.fromarray(texture(1)))[None])[0, 0]
    assert dhash(image).shape == (4,)  # 256 bits
    assert same <= 16 < other


def test_report_finds_every_planted_leak(leaky: Path) -> None:
    report = build_report(read_manifest(leaky / "manifest.csv"), workers=2)
    assert report.n_images == 15
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
    assert report.leaks == {
        "exact_duplicates": 1,
        "near_duplicates": 2,
        "patients_in_several_splits": 1,
    }
    assert report.modes["L"] == 13 and report.modes["unreadable"] == 1


def test_fast_path_skips_decoding(leaky: Path) -> None:
    report = build_report(read_manifest(leaky / "manifest.csv"), decode=False)
    assert report.unreadable is None and report.near_duplicates is None
    assert len(report.exact_duplicates) == 1 and report.patients_in_several_splits


def test_cli_exit_status_and_json(leaky: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    assert main([str(leaky / "manifest.csv"), "--json", str(out), "--workers", "2"]) == 1
    printed = capsys.readouterr().out
    assert "LEAK" in printed and "patients in several splits" in printed
    saved = json.loads(out.read_text())
    assert saved["leaks"]["exact_duplicates"] == 1 and saved["n_images"] == 15
    clean = tmp_path / "clean"
    for i in range(4):
        save_in_mode(texture(i), clean / ("train" if i < 2 else "test") / "covid" / f"{i}.png", "L")
    assert main([str(clean), "--json", str(tmp_path / "clean.json")]) == 0
    assert "no leak" in capsys.readouterr().out


def test_check_before_fit_stops_or_warns(leaky: Path, tmp_path: Path) -> None:
    table = read_manifest(leaky / "manifest.csv")
    with pytest.raises(DataLeakError, match="patient p2 in") as error:
        check_before_fit(table, tmp_path / "a.json")
    assert "check_data.on_leak=warn" in str(error.value)
    assert "copy.png" in str(error.value)
    report = check_before_fit(table, tmp_path / "b.json", on_leak="warn")
    assert json.loads((tmp_path / "b.json").read_text())["leaks"] == report.leaks


@requires_real_data
def test_real_cxr_dev_has_no_leak() -> None:
    report = build_report(read_manifest(CXR_DEV / "manifest.csv"))
    assert report.n_images == 411 and report.unreadable == {}
    assert report.leaks == {}
    assert set(report.modes) == {"L", "RGB", "RGBA", "P"}
