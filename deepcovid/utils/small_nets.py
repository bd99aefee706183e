"""What the two small shipped networks share (the lung U-Net, :mod:`deepcovid.lungs.model`, and
the scope convnet, :mod:`deepcovid.scope.model`): their convolution block and the image →
standardised working-size pixels step."""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3×3 convolutions, each followed by batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def standardise(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels → float32 with zero mean and unit variance (a flat image stays zero)."""
    values = pixels.astype(np.float32) / 255.0
    return (values - values.mean()) / max(float(values.std()), 1e-3)


def to_working_pixels(image: Image.Image, size: int) -> np.ndarray:
    """An 8-bit grayscale image resized (bilinear, antialiased) to ``size × size`` uint8."""
    if image.mode != "L":
        raise ValueError(f"expected an 8-bit grayscale ('L') image, got mode {image.mode!r}")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
