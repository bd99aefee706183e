"""Generated chest-like images with known lungs, and a tiny segmenter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepcovid.lungs.model import LungUNet, UNetShape
from deepcovid.lungs.weights import save_network

TINY_SHAPE = UNetShape(base_channels=4, depth=2)
TINY_SIZE = 32


def synthetic_chest(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 image (bright body, two dark lungs, noise) and its bool lung mask."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    u, v = x / width, y / height
    body = ((u - 0.5) / 0.45) ** 2 + ((v - 0.5) / 0.48) ** 2 < 1
    shift = rng.uniform(-0.03, 0.03)
    lungs = np.zeros((height, width), dtype=bool)
    for centre, half_width in ((0.3, 0.14), (0.7, 0.12)):  # the left lung (image right) smaller
        lungs |= ((u - centre - shift) / half_width) ** 2 + ((v - 0.5) / 0.3) ** 2 < 1
    image = np.where(body, 200.0, 20.0)
    image[lungs] = 70.0
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), lungs


def write_chests(folder: Path, count: int, size: tuple[int, int] = (60, 48)) -> list[Path]:
    """``count`` generated chests as ``folder/chest_i.png`` with masks in ``folder/masks/``."""
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image, lungs = synthetic_chest(*size, seed=i)
        Image.fromarray(image).save(folder / f"chest_{i}.png")
        Image.fromarray(lungs.astype(np.uint8) * 255).save(folder / "masks" / f"chest_{i}.png")
        paths.append(folder / f"chest_{i}.png")
    return paths


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """Untrained tiny weights with their card, as deepcovid.lungs.train would write them."""
    network = LungUNet(TINY_SHAPE)
    path = tmp_path / "weights" / "tiny.safetensors"
    save_network(network, path, working_size=TINY_SIZE)
    return path
