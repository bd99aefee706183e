"""The audit's lung masks: a given mask through the image's eval geometry, and every image
without a usable one counted with the reason."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepcovid.data.transforms import EvalPreset, Preprocessing
from deepcovid.shortcuts.masks import REFUSED, AuditMasks, MaskSources

OFF = MaskSources(v7=False, segmenter=False)


def write(path: Path, pixels: np.ndarray) -> str:
    Image.fromarray(pixels).save(path)
    return str(path)


@pytest.fixture
def masks(tmp_path: Path) -> AuditMasks:
    return AuditMasks(EvalPreset(Preprocessing(image_size=32, crop_ratio=1.0)), None, OFF)


def test_a_given_mask_is_taken_through_the_eval_geometry(masks: AuditMasks, tmp_path) -> None:
    image = write(tmp_path / "x.png", np.full((64, 64), 120, np.uint8))
    lungs = np.zeros((64, 64), np.uint8)
    lungs[8:56, 4:28] = 255
    lungs[8:56, 36:60] = 255
    found = masks(image, write(tmp_path / "x_mask.png", lungs))
    assert found.origin == "given" and found.problem is None
    assert found.mask.shape == (32, 32) and found.area_share == pytest.approx(0.75 * 0.75)


def test_images_without_a_usable_mask_say_why(masks: AuditMasks, tmp_path) -> None:
    image = write(tmp_path / "x.png", np.full((64, 64), 120, np.uint8))
    none = masks(image)
    assert none.mask is None and none.origin == "none" and "segmenter off" in none.problem
    empty = masks(image, write(tmp_path / "empty.png", np.zeros((64, 64), np.uint8)))
    assert empty.mask is None and empty.problem == "the given mask is empty"
    other = masks(image, write(tmp_path / "wide.png", np.full((32, 96), 255, np.uint8)))
    assert other.mask is None and other.origin == REFUSED and other.problem
