"""What the small shipped networks share: their conv block and their working pixels."""

import numpy as np
import pytest
import torch
from PIL import Image

from deepcovid.utils.small_nets import conv_block, standardise, to_working_pixels


def test_the_conv_block_keeps_the_size_and_sets_the_channels() -> None:
    block = conv_block(2, 5).eval()
    assert block(torch.randn(1, 2, 7, 9)).shape == (1, 5, 7, 9)
    assert sum(isinstance(m, torch.nn.Conv2d) and m.bias is None for m in block) == 2


def test_working_pixels_are_grayscale_resized_and_standardised() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50), dtype=np.uint8))
    pixels = to_working_pixels(image, 16)
    assert pixels.shape == (16, 16) and pixels.dtype == np.uint8
    values = standardise(pixels)
    assert values.dtype == np.float32 and abs(values.mean()) < 1e-5
    assert abs(values.std() - 1) < 1e-4
    assert not standardise(np.full((4, 4), 7, dtype=np.uint8)).any()  # a flat image: zeros
    with pytest.raises(ValueError, match="got mode 'RGB'"):
        to_working_pixels(Image.new("RGB", (8, 8)), 4)
