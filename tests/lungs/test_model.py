"""The U-Net's shapes and size, and the image → tensor step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deepcovid.lungs.model import WORKING_SIZE, LungUNet, UNetShape, model_input


@pytest.mark.parametrize(("shape", "size"), [(UNetShape(4, 2), 32), (UNetShape(8, 4), 64)])
def test_unet_keeps_the_spatial_size(shape: UNetShape, size: int) -> None:
    network = LungUNet(shape).eval()
    with torch.inference_mode():
        logits = network(torch.randn(2, 1, size, size))
    assert logits.shape == (2, 1, size, size)


def test_default_unet_fits_the_weight_budget() -> None:
    parameters = sum(p.numel() for p in LungUNet(UNetShape(8, 4)).parameters())
    assert parameters * 4 < 10e6  # float32 bytes: the shipped file must stay under 10 MB


def test_model_input_is_standardised_at_the_working_size() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (300, 200), dtype=np.uint8)
    tensor = model_input(Image.fromarray(pixels))
    assert tensor.shape == (1, WORKING_SIZE, WORKING_SIZE) and tensor.dtype == torch.float32
    assert abs(float(tensor.mean())) < 1e-4 and abs(float(tensor.std()) - 1) < 1e-2


def test_model_input_wants_grayscale() -> None:
    with pytest.raises(ValueError, match="'RGB'"):
        model_input(Image.new("RGB", (10, 10)))
