"""One call per image: given mask → mask folder → V7 by file name → segmenter; lung crops."""

from __future__ import annotations

import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepcovid.lungs.masks import V7_ZIP_NAME, MaskMismatchError
from deepcovid.lungs.provider import LungMaskProvider
from tests.lungs.conftest import synthetic_chest, write_chests


@pytest.fixture
def chests(tmp_path: Path) -> list[Path]:
    return write_chests(tmp_path / "images", 3)


@pytest.fixture
def v7_zip(tmp_path: Path) -> Path:
    """V7 masks for chest_1.png (at twice the image's resolution) and an empty one for
    chest_2.png."""
    _, lungs = synthetic_chest(120, 96, seed=1)
    path = tmp_path / V7_ZIP_NAME
    with zipfile.ZipFile(path, "w") as archive:
        for name, mask in (("chest_1.png", lungs), ("chest_2.png", np.zeros_like(lungs))):
            buffer = BytesIO()
            Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
            archive.writestr(f"semantic_masks_v7labs_lungs/{name}", buffer.getvalue())
    return path


def test_masks_are_found_in_order(
    chests: list[Path], v7_zip: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    mask_dir = chests[0].parent / "masks"
    provider = LungMaskProvider(mask_dir=mask_dir, v7_zip=v7_zip, weights=tiny_weights)
    given = provider.mask_for(chests[1], given_mask=mask_dir / "chest_0.png")
    assert given.origin == "given"
    assert provider.mask_for(chests[0]).origin == "folder"
    (mask_dir / "chest_1.png").unlink()
    from_v7 = provider.mask_for(chests[1])
    assert from_v7.origin == "v7" and from_v7.mask.shape == (48, 60)
    assert from_v7.quality.quality_flag == ""
    (mask_dir / "chest_2.png").unlink()
    predicted = provider.mask_for(chests[2])  # V7's mask is empty: the segmenter answers
    assert predicted.origin == "segmenter" and predicted.mask.shape == (48, 60)


def test_without_v7_the_segmenter_answers(chests: list[Path], tiny_weights: Path) -> None:
    provider = LungMaskProvider(use_v7=False, weights=tiny_weights)
    image = Image.open(chests[0])
    found = provider.mask_for(chests[0], image=image)
    assert found.origin == "segmenter" and found.mask.shape == (image.height, image.width)


def test_a_mismatched_given_mask_is_refused(
    chests: list[Path], tiny_weights: Path, tmp_path: Path
) -> None:
    provider = LungMaskProvider(use_v7=False, weights=tiny_weights)
    Image.new("L", (48, 48), 255).save(tmp_path / "square.png")
    with pytest.raises(MaskMismatchError, match="square.png"):
        provider.mask_for(chests[0], given_mask=tmp_path / "square.png")
