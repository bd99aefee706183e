"""Every bad input of issue 7 through the training DataModule, training, evaluate and the data
check: each is read correctly, or stops the run naming every offending file and the fix, or
(``data.on_bad_file=skip``) is left out, logged and counted."""

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepcovid.data.cache import FileCache
from deepcovid.data.datamodule import BadFilesError, XrayDataModule
from deepcovid.data.io import (
    DEFAULT_MAX_IMAGE_PIXELS,
    UnreadableImageError,
    load_image,
    set_max_image_pixels,
)
from deepcovid.data.leaks import leak_report
from deepcovid.data.samples import DatasetLayoutError, scan_folders
from deepcovid.evaluate import evaluate
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from deepcovid.utils.files import printable
from tests.conftest import SHARED_DATA, chest_like, make_covidx5k, save_in_mode, tiny_overrides

DICOM = SHARED_DATA / "dicom"


def module(root: Path, **kwargs) -> XrayDataModule:
    return XrayDataModule(str(root), image_size=32, batch_size=8, num_workers=0, **kwargs)


def exif_rotated(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90°
    Image.fromarray(chest_like(48, 3, True)[:, :30]).save(path, exif=exif)
    return path


def cmyk(path: Path) -> Path:
    Image.fromarray(chest_like(48, 4, False)).convert("CMYK").save(path, quality=95)
    return path


def plant_bad_files(root: Path) -> list[str]:
    """Unusable files in several class folders; their paths."""
    truncated_png = save_in_mode(chest_like(64, 0, True), root / "train/covid/cut.png", "L")
    truncated_png.write_bytes(truncated_png.read_bytes()[:150])
    truncated_jpg = save_in_mode(chest_like(64, 1, False), root / "train/non/cut.jpg", "RGB")
    truncated_jpg.write_bytes(truncated_jpg.read_bytes()[:300])
    (root / "train/covid/notes.png").write_text("radiologist notes, not an image")
    (root / "test/non/empty.png").write_bytes(b"")
    (root / "train/non/broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 40)
    latin1 = Path(os.fsdecode(os.fsencode(root / "test/covid") + b"/radiograf\xeda.png"))
    save_in_mode(chest_like(48, 2, True), latin1, "L")
    others = [
        root / "train/covid/notes.png",
        root / "test/non/empty.png",
        root / "train/non/broken.dcm",
    ]
    return [str(p) for p in (truncated_png, truncated_jpg, *others, latin1)]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A COVID-Xray-5k tree in every valid container mode (16-bit, RGBA, palette, RGB/L JPEG),
    plus CMYK, EXIF-rotated, 8x8 and DICOM images, plus the unusable files."""
    root = make_covidx5k(tmp_path_factory.mktemp("zoo") / "data")
    cmyk(root / "train/non/cmyk.jpg")
    exif_rotated(root / "train/covid/exif.jpg")
    save_in_mode(chest_like(8, 5, True), root / "test/covid/tiny.png", "L")
    if DICOM.is_dir():
        shutil.copy(DICOM / "siim-chest-monochrome1.dcm", root / "train/non/mono1.dcm")
        shutil.copy(DICOM / "siim-chest-monochrome2.dcm", root / "test/non/mono2.dcm")
    return root, plant_bad_files(root)


def test_error_policy_names_every_bad_file_and_the_fix(zoo, caplog) -> None:
    root, bad = zoo
    with pytest.raises(BadFilesError) as error:
        module(root).setup()
    message = str(error.value)
    for path in bad:
        assert printable(path) in message
    assert message.startswith(f"{len(bad)} of ")
    assert "data.on_bad_file=skip" in message
    for reason in ("truncated", "empty (0 bytes)", "not a readable DICOM", "not valid UTF-8"):
        assert reason in message
    message.encode("utf-8")  # the non-UTF-8 name is escaped, so the message can be logged


def test_skip_policy_leaves_bad_files_out_and_reads_every_odd_mode(zoo, caplog) -> None:
    root, bad = zoo
    dm = module(root, on_bad_file="skip", val_fraction=0.25)
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert sorted(dm.skipped) == sorted(bad)
    assert not dm.table["path"].isin(bad).any()
    assert f"leaving out {len(bad)} file(s)" in caplog.text
    names = set(dm.table["path"].map(lambda p: Path(p).name))
    assert {"cmyk.jpg", "exif.jpg", "tiny.png"} <= names
    for split, loader in [("train", dm.train_dataloader()), ("test", dm.test_dataloader())]:
        seen = 0
        for batch in loader:  # every remaining file decodes and transforms
            assert batch["image"].shape[1:] == (3, 32, 32)
            seen += len(batch["label"])
        assert seen >= len(dm.split(split))


def test_odd_but_valid_images_decode_correctly(tmp_path: Path) -> None:
    gray = chest_like(48, 4, False)
    assert np.abs(np.asarray(load_image(cmyk(tmp_path / "c.jpg"))).astype(int) - gray).mean() < 3
    assert load_image(exif_rotated(tmp_path / "r.jpg")).size == (48, 30)  # upright
    tiny = load_image(save_in_mode(chest_like(8, 5, True), tmp_path / "t.png", "L"))
    assert tiny.size == (8, 8)
    for mode in ("I;16", "RGBA", "P"):
        image = load_image(save_in_mode(gray, tmp_path / f"{mode[:1]}.png", mode))
        assert image.mode == "L" and image.size == (48, 48)


@pytest.mark.skipif(not DICOM.is_dir(), reason="../shared/data/dicom is absent")
def test_dicom_monochrome1_and_2_pass_validation(zoo) -> None:
    root, _ = zoo
    dm = module(root, on_bad_file="skip")
    dm.setup()
    assert {"mono1.dcm", "mono2.dcm"} <= set(dm.table["path"].map(lambda p: Path(p).name))


def test_40_megapixel_image_and_the_decompression_bomb_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.new("L", (8000, 5000), 90).save(big)  # 40 MP, compresses to a few KB
    try:
        assert load_image(big).size == (8000, 5000)  # under the 100 MP default: decoded
        module(tmp_path, max_image_pixels=30_000_000)
        with pytest.raises(UnreadableImageError, match="data.max_image_pixels") as error:
            load_image(big)
        assert "40000000 pixels" in str(error.value)
    finally:
        set_max_image_pixels(DEFAULT_MAX_IMAGE_PIXELS)


def test_dataset_layout_problems_are_named(tmp_path: Path, caplog) -> None:
    root = make_covidx5k(tmp_path / "a", {"train/covid": 12, "train/non": 12})
    (root / "test/non").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"test/non: the class folder holds no images"):
        scan_folders(root)
    shutil.rmtree(root / "test")
    with caplog.at_level(logging.WARNING):
        dm = module(root)
        dm.setup()
    assert "no test/ folder" in caplog.text and (dm.table["split"] == "test").any()
    (root / "train").rename(root / "training")
    make_covidx5k(root, {"test/covid": 2, "test/non": 2})
    with pytest.raises(DatasetLayoutError, match=r"has \['test'\] but no train/ folder"):
        module(root).setup()
    unknown = make_covidx5k(tmp_path / "b", {"train/covid": 2, "train/pneumonia": 2})
    with pytest.raises(DatasetLayoutError, match=r"class folders \['pneumonia'\]"):
        scan_folders(unknown)


def test_manifest_problems_are_named(tmp_path: Path) -> None:
    make_covidx5k(tmp_path, {"train/covid": 4, "train/non": 4, "test/covid": 2, "test/non": 2})
    paths = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.*"))
    rows = [[p, "covid" if "/covid/" in p else "non-covid"] for p in paths]
    manifest = tmp_path / "manifest.csv"

    def write(extra: list[list[str]]) -> None:
        pd.DataFrame(rows + extra, columns=["path", "label"]).to_csv(manifest, index=False)

    write([[paths[0], "covid"], ["train/covid/x.png", "pneumonia"], ["train/non/y.png", "?"]])
    with pytest.raises(DatasetLayoutError) as error:
        module(tmp_path, val_fraction=0.5).setup()
    message = str(error.value)
    assert "2 problem(s)" in message
    assert "unknown label(s) ['?', 'pneumonia'] at lines 15, 16" in message
    assert f"{tmp_path / paths[0]} is listed more than once (lines 2, 14)" in message

    write([["train/covid/gone.png", "covid"], ["test/non/gone.png", "non-covid"]])
    with pytest.raises(BadFilesError) as error:
        module(tmp_path, val_fraction=0.5).setup()
    assert "2 of 14" in str(error.value) and str(error.value).count("no such file") == 2
    dm = module(tmp_path, on_bad_file="skip", val_fraction=0.5)
    dm.setup()
    assert len(dm.table) == 12 and len(dm.skipped) == 2


def test_data_check_lists_every_unreadable_file(zoo) -> None:
    root, bad = zoo
    table = scan_folders(root)
    report = leak_report(table, FileCache(root.parent / "cache").scan(table["path"].tolist()))
    assert sorted(report.unreadable) == sorted(printable(p) for p in bad)
    assert "empty (0 bytes)" in report.unreadable[printable(root / "test/non/empty.png")]


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """(data root, run folder, bad files) of a training run under on_bad_file=skip."""
    tmp = tmp_path_factory.mktemp("bad_run")
    root = make_covidx5k(tmp / "data")
    bad = plant_bad_files(root)
    run = tmp / "run"
    overrides = tiny_overrides(root, run, "data.on_bad_file=skip")
    train(compose_config("train", overrides, output_dir=str(run)))
    return root, run, bad


@pytest.mark.slow
def test_training_under_both_policies(bad_run, tmp_path: Path) -> None:
    root, run, bad = bad_run
    strict = compose_config("train", tiny_overrides(root, tmp_path), output_dir=str(tmp_path))
    with pytest.raises(BadFilesError, match="6 of 56 image files cannot be used"):
        train(strict)
    assert not (tmp_path / "checkpoints").exists()  # stopped before fitting
    logged = pd.read_csv(run / "csv" / "metrics.csv")
    assert logged["test/skipped_files"].dropna().tolist() == [len(bad)]
    predictions = pd.read_csv(run / "predictions" / "test.csv")
    assert len(predictions) == 14 and not predictions["path"].isin(bad).any()
    skipped = json.loads((run / "metrics" / "test.json").read_text())["skipped"]
    assert sorted(skipped) == sorted(bad)


@pytest.mark.slow
def test_evaluate_under_both_policies(bad_run, tmp_path: Path) -> None:
    root, run, bad = bad_run
    overrides = [
        f"data.root={root}",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "print_config=false",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
    ]
    with pytest.raises(BadFilesError, match="empty.png"):
        evaluate(compose_config("eval", overrides, output_dir=str(tmp_path)))
    skip = [*overrides, "data.on_bad_file=skip"]
    evaluate(compose_config("eval", skip, output_dir=str(tmp_path)))
    predictions = pd.read_csv(tmp_path / "predictions" / "test.csv")
    assert len(predictions) == 14 and not predictions["path"].isin(bad).any()
    metrics = json.loads((tmp_path / "metrics" / "test.json").read_text())
    assert set(metrics["skipped"]) == set(bad)
    assert "left out (data.on_bad_file=skip)" in (tmp_path / "report.md").read_text()
