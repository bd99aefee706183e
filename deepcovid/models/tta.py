"""Test-time augmentation: views of a prepared input batch ``(N, C, S, S)`` that a model scores
besides the image itself, their P(COVID) averaged (:mod:`deepcovid.models.ensemble`).

``hflip`` adds the image flipped left-right; ``crop`` adds its four corner crops of
``crop_fraction`` of its side, resized back to ``S`` (bilinear). The image itself is always the
first view, so ``tta=[hflip]`` averages 2 views and ``tta=[hflip,crop]`` 6.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
DEFAULT_CROP_FRACTION = 0.9


class Identity(nn.Module):
    """The image as prepared."""

    name = "identity"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images


class HorizontalFlip(nn.Module):
    """The image flipped left-right."""

    name = "hflip"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flip(-1)


class CornerCrop(nn.Module):
    """A corner crop of ``fraction`` of the side, resized back to the input size."""

    def __init__(self, corner: str, fraction: float) -> None:
        super().__init__()
        self.corner, self.fraction = corner, fraction
        self.name = f"crop_{corner}_{fraction:g}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        h, w = round(height * self.fraction), round(width * self.fraction)
        top = 0 if self.corner.startswith("top") else height - h
        left = 0 if self.corner.endswith("left") else width - w
        crop = images[..., top : top + h, left : left + w]
        return F.interpolate(crop, size=(height, width), mode="bilinear", align_corners=False)


def crops(fraction: float) -> list[nn.Module]:
    return [CornerCrop(corner, fraction) for corner in CORNERS]


AUGMENTATIONS = {"hflip": lambda fraction: [HorizontalFlip()], "crop": crops}


def tta_views(
    names: Sequence[str], crop_fraction: float = DEFAULT_CROP_FRACTION
) -> list[nn.Module]:
    """The image itself, then the views of each named augmentation (:data:`AUGMENTATIONS`)."""
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"tta={list(names)}: unknown {unknown}; choose from {list(AUGMENTATIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"tta={list(names)}: each augmentation once")
    if not 0.0 < crop_fraction < 1.0:
        raise ValueError(f"tta_crop_fraction={crop_fraction}: must lie in (0, 1)")
    views: list[nn.Module] = [Identity()]
    for name in names:
        views += AUGMENTATIONS[name](crop_fraction)
    return views
