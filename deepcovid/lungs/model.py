"""A compact U-Net for lung masks on frontal chest X-rays, and the image → tensor step it needs.

The network sees one grayscale channel at a fixed square working size (the image is resized,
not padded: chest X-rays' aspect ratios vary and the lungs fill most of any crop), standardised
per image so windowing and exposure differences between sources matter less. It returns one
logit per pixel at the working size; :mod:`deepcovid.lungs.segmenter` brings it back to the
image's own resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from deepcovid.utils.small_nets import conv_block, standardise, to_working_pixels

WORKING_SIZE = 256  # pixels, square; the shipped weights were trained at this size


@dataclass(frozen=True)
class UNetShape:
    """Width and depth of :class:`LungUNet` (stored beside the weights)."""

    base_channels: int = 16
    depth: int = 4  # poolings; WORKING_SIZE must be divisible by 2**depth

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class LungUNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with bilinear upsampling: ``(N, 1, H, W)`` images to
    ``(N, 1, H, W)`` lung logits; H and W divisible by ``2**shape.depth``."""

    def __init__(self, shape: UNetShape = UNetShape()) -> None:
        super().__init__()
        self.shape = shape
        widths = [shape.base_channels * 2**level for level in range(shape.depth + 1)]
        self.down = nn.ModuleList(
            [conv_block(1, widths[0])]
            + [conv_block(widths[i], widths[i + 1]) for i in range(shape.depth)]
        )
        self.up = nn.ModuleList(
            [conv_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(shape.depth))]
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        skips = []
        x = images
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def model_input(image: Image.Image, size: int = WORKING_SIZE) -> torch.Tensor:
    """The ``(1, size, size)`` network input for an image from ``deepcovid.data.io.load_image``."""
    return torch.from_numpy(standardise(to_working_pixels(image, size)))[None]
