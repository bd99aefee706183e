"""The segmenter returns cleaned bool masks at each input's own resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepcovid.lungs.model import LungUNet
from deepcovid.lungs.segmenter import LungSegmenter, load_segmenter
from tests.lungs.conftest import TINY_SHAPE, TINY_SIZE, synthetic_chest


class Oracle(torch.nn.Module):
    """Logits that are the given working-size mask with a stray blob and a hole in it."""

    def __init__(self, mask: np.ndarray) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the module a device
        noisy = mask.copy()
        noisy[1:4, 1:4] = True  # fragment outside the lungs (0.9 % of the image)
        noisy[14:16, 8:10] = False  # hole inside the right lung
        self.logits = torch.from_numpy(np.where(noisy, 8.0, -8.0).astype(np.float32))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(images), 1, *self.logits.shape)


def test_masks_come_back_at_the_input_resolution(tiny_weights: Path) -> None:
    segmenter = load_segmenter(tiny_weights)
    images = [Image.fromarray(synthetic_chest(w, h, seed=0)[0]) for w, h in ((60, 48), (37, 81))]
    results = segmenter.segment_batch(images)
    for image, result in zip(images, results, strict=True):
        assert result.mask.shape == (image.height, image.width) and result.mask.dtype == bool
        assert 0.0 <= result.quality.lung_area_share <= 1.0


def test_postprocessing_applies_at_full_resolution() -> None:
    _, working_mask = synthetic_chest(TINY_SIZE, TINY_SIZE, seed=1)
    segmenter = LungSegmenter(Oracle(working_mask), TINY_SIZE)
    image, truth = synthetic_chest(128, 128, seed=1)
    result = segmenter.segment(Image.fromarray(image))
    assert result.mask.shape == (128, 128)
    assert not result.mask[:20, :20].any()  # fragment removed
    assert result.mask[56:64, 32:40].all()  # hole filled
    dice = 2 * (result.mask & truth).sum() / (result.mask.sum() + truth.sum())
    assert dice > 0.9
    assert "3 lung regions before cleanup" in result.quality.quality_flag


def test_an_untrained_network_still_gives_valid_masks() -> None:
    segmenter = LungSegmenter(LungUNet(TINY_SHAPE), TINY_SIZE)
    result = segmenter.segment(Image.new("L", (50, 40), 128))
    assert result.mask.shape == (40, 50)
