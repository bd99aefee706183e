"""data.lung_crop: boxes from the chosen masks, found once and kept, the same crop for the
training loader, evaluate and predict; on cxr-dev it trains."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepcovid.data.datamodule import XrayDataModule
from deepcovid.data.io import is_image_file, load_image
from deepcovid.data.transforms import Preprocessing
from deepcovid.lungs.crop import LungBoxes, LungCropReader, box_of, crop, mask_origin
from tests.conftest import CXR_DEV, make_covidx5k, requires_real_data


def mask_folder(images: list[Path], folder: Path) -> dict[str, tuple[int, int, int, int]]:
    """A mask per image stem, ``folder/<stem>.png``: a rectangle placed by the stem's number."""
    folder.mkdir(exist_ok=True)
    boxes = {}
    for path in images:
        k = int("".join(c for c in path.stem if c.isdigit()))
        with Image.open(path) as image:
            width, height = image.size
        mask = np.zeros((height, width), dtype=np.uint8)
        box = (4 + k % 5, 6, width - 8, height - 4 - k % 3)
        mask[box[1] : box[3], box[0] : box[2]] = 255
        Image.fromarray(mask).save(folder / f"{path.stem}.png")
        boxes[str(path)] = box
    return boxes


def test_boxes_are_found_once_and_found_again_when_what_defines_them_changes(tmp_path):
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:30, 5:45] = True
    calls = []

    def find(path: str, given: str | None) -> np.ndarray:
        calls.append(path)
        return mask

    def boxes(margin=0.05, masks="segmenter", digest="a", given=None):
        origin = mask_origin("x.png", given, masks)
        return LungBoxes(tmp_path, margin, masks).boxes(
            ["x.png"], [digest], [given], [origin], find
        )

    first = boxes()
    assert first == {"x.png": box_of(mask, 0.05)} and len(calls) == 1
    assert boxes() == first and len(calls) == 1  # kept in lung-boxes.json
    boxes(margin=0.1)
    boxes(margin=0.1, masks="any")
    boxes(margin=0.1, masks="any", digest="b")  # the file changed
    assert len(calls) == 4
    assert json.loads((tmp_path / "lung-boxes.json").read_text())["masks"] == "any"
    given = tmp_path / "given.png"
    Image.fromarray(mask.astype(np.uint8) * 255).save(given)
    boxes(margin=0.1, masks="any", digest="b", given=str(given))  # a mask is given now
    boxes(margin=0.1, masks="any", digest="b", given=str(given))
    assert len(calls) == 5
    os.utime(given, ns=(1, 1))  # the given mask was edited
    boxes(margin=0.1, masks="any", digest="b", given=str(given))
    assert len(calls) == 6
    empty = LungBoxes(tmp_path / "other").boxes
    with pytest.raises(ValueError, match="y.png: its lung mask is empty"):
        empty(["y.png"], ["c"], [None], ["segmenter"], lambda path, given: np.zeros((4, 4), bool))


def test_training_images_are_cropped_to_the_given_masks(tmp_path: Path) -> None:
    root = make_covidx5k(tmp_path / "data", size=64)
    images = sorted(root.rglob("*.png"))
    expected = mask_folder(images, tmp_path / "masks")
    datamodule = XrayDataModule(
        str(root), num_workers=0, lung_crop=True, lung_crop_masks="any",
        lung_masks=str(tmp_path / "masks"), image_size=32, crop_ratio=1.0,
    )  # fmt: skip
    datamodule.setup("fit")
    assert datamodule.preprocessing.lung_crop
    for path, (left, top, right, bottom) in expected.items():
        margin_x, margin_y = 0.05 * (right - left), 0.05 * (bottom - top)
        got = [round(v * 64) for v in datamodule.boxes[path]]
        want = [max(0, left - margin_x), max(0, top - margin_y),
                min(64, right + margin_x), min(64, bottom + margin_y)]  # fmt: skip
        assert np.allclose(got, want, atol=1.5), (path, got, want)
    test = datamodule.split("test")
    item = datamodule.dataset("test")[0]
    cropped = crop(load_image(test["path"].iloc[0]), datamodule.boxes[test["path"].iloc[0]])
    assert cropped.size != (64, 64)
    reference = datamodule.dataset("test").transform(cropped)
    torch.testing.assert_close(item["image"].float(), reference.float())


@pytest.mark.parametrize("cache", [False, True])
def test_blanking_sets_every_pixel_outside_the_lungs_to_black(tmp_path: Path, cache: bool):
    root = make_covidx5k(tmp_path / "data", size=64)
    images = sorted(p for p in root.rglob("*") if is_image_file(p))
    expected = mask_folder(images, tmp_path / "masks")
    datamodule = XrayDataModule(
        str(root), num_workers=0, outside_lungs="blank", lung_crop_masks="any", cache=cache,
        lung_masks=str(tmp_path / "masks"), cache_short_side=64,
    )  # fmt: skip
    datamodule.setup("fit")
    assert datamodule.boxes == {}  # blanked, not cropped
    loader = datamodule.dataset("test").loader
    for path in datamodule.split("test")["path"]:
        pixels = np.asarray(loader(path)).squeeze()
        assert pixels.shape == (64, 64)
        left, top, right, bottom = expected[path]
        inside = np.zeros_like(pixels, dtype=bool)
        inside[top:bottom, left:right] = True
        assert (pixels[~inside] == 0).all()
        original = np.asarray(load_image(path))
        np.testing.assert_array_equal(pixels[inside], original[inside])


def test_lung_crop_masks_is_checked() -> None:
    with pytest.raises(ValueError, match="lung_crop_masks='v7'"):
        Preprocessing(lung_crop_masks="v7")
    with pytest.raises(ValueError, match="outside_lungs='grey'"):
        Preprocessing(outside_lungs="grey")


@requires_real_data
@pytest.mark.realdata
@pytest.mark.slow
def test_lung_crop_trains_on_cxr_dev_and_predict_crops_alike(tmp_path: Path) -> None:
    import pandas as pd

    from deepcovid.data.transforms import EvalPreset
    from deepcovid.models.checkpoints import load_classifier
    from deepcovid.predict import predict
    from deepcovid.train import train
    from deepcovid.utils.config import compose_config
    from tests.conftest import best_checkpoint, tiny_overrides

    out = tmp_path / "run"
    overrides = tiny_overrides(
        CXR_DEV, out, "data.lung_crop=true", "metrics.bootstrap_resamples=20"
    )
    train(compose_config("train", overrides, str(out)))
    checkpoint = best_checkpoint(out)
    model = load_classifier(checkpoint)
    preprocessing = model.record.preprocessing
    assert preprocessing.lung_crop and preprocessing.lung_crop_masks == "segmenter"
    image = sorted((CXR_DEV / "test" / "covid").iterdir())[0]
    overrides = [f"ckpt_path={checkpoint}", f"inputs={image}", "device=cpu"]
    predicted = pd.read_csv(predict(compose_config("predict", overrides, str(tmp_path / "p"))))
    transform = EvalPreset(preprocessing)
    cropped = LungCropReader(preprocessing.lung_margin, "segmenter")(image)
    assert cropped.size != load_image(image).size
    with torch.inference_mode():
        direct = model.prob_covid(transform(cropped)[None]).item()
    assert predicted["prob_covid"].iloc[0] == pytest.approx(direct, abs=1e-6)


def test_the_described_input_names_the_lung_step() -> None:
    from deepcovid.data.transforms import STEPS

    assert Preprocessing().steps == STEPS
    blanked = Preprocessing(outside_lungs="blank").steps
    assert blanked.startswith("load_image (8-bit grayscale); pixels outside the lung mask set to 0")
    assert (
        "box" not in blanked
        and "box widened by 0.1" in Preprocessing(lung_crop=True, lung_margin=0.1).steps
    )


def test_a_partly_filled_lung_mask_column_crops_every_image(tmp_path: Path) -> None:
    """Blank lung_mask cells (pandas 3 keeps them as NaN in a str column) fall back to the
    next mask source instead of reaching os.stat as a float."""
    root = make_covidx5k(tmp_path / "data", size=64)
    images = sorted(p for p in root.rglob("*") if is_image_file(p))
    expected = mask_folder(images, tmp_path / "masks")
    given = {str(p): f"masks/{p.stem}.png" if i % 2 else "" for i, p in enumerate(images)}
    rows = [f"{p.relative_to(root)},{p.parent.name},{given[str(p)]}" for p in images]
    manifest = root / "manifest.csv"
    manifest.write_text("path,label,lung_mask\n" + "\n".join(rows) + "\n")
    (root / "masks").symlink_to(tmp_path / "masks")
    datamodule = XrayDataModule(
        str(root), num_workers=0, lung_crop=True, lung_crop_masks="any",
        lung_masks=str(tmp_path / "masks"), image_size=32, crop_ratio=1.0,
    )  # fmt: skip
    datamodule.setup("fit")
    table = datamodule.table
    assert table["lung_mask"].notna().sum() == len(images) // 2  # half the cells are blank
    for path, (left, top, right, bottom) in expected.items():
        margin_x, margin_y = 0.05 * (right - left), 0.05 * (bottom - top)
        got = [round(v * 64) for v in datamodule.boxes[path]]
        want = [max(0, left - margin_x), max(0, top - margin_y),
                min(64, right + margin_x), min(64, bottom + margin_y)]  # fmt: skip
        assert np.allclose(got, want, atol=1.5), (path, got, want)
