"""Where occlusion windows go and how their score drops become an attribution map.

The placement follows Captum's ``Occlusion``: along each axis the window starts at
``0, stride, 2·stride, …`` for ``ceil((size - window) / stride) + 1`` positions, so the last
window may overhang the image edge and is cut there; each pixel's attribution is the mean score
drop over the windows that cover it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import torch
import torch.nn.functional as F


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``value`` as a (rows, columns) pair of positive ints; ``name`` is used in errors."""
    values = tuple(value) if isinstance(value, Sequence) else (value, value)
    if len(values) != 2 or not all(isinstance(v, Integral) and v >= 1 for v in values):
        raise ValueError(f"{name}={value!r}: expected a positive int or a pair of positive ints")
    return int(values[0]), int(values[1])


@dataclass(frozen=True)
class OcclusionGrid:
    """Window positions over an ``height × width`` image."""

    height: int
    width: int
    window: tuple[int, int]
    stride: tuple[int, int]

    @classmethod
    def create(
        cls,
        size: tuple[int, int],
        window: int | tuple[int, int],
        stride: int | tuple[int, int],
    ) -> OcclusionGrid:
        """A grid for an image of ``size`` (rows, columns), checked as Captum checks it."""
        window, stride = pair(window, "window"), pair(stride, "stride")
        for axis, extent, win, step in zip(("rows", "columns"), size, window, stride, strict=True):
            if win > extent:
                raise ValueError(
                    f"window {window} is larger than the image ({size[0]}×{size[1]}) along "
                    f"its {axis}: use a smaller window or a larger image"
                )
            if step > win and win < extent:
                raise ValueError(
                    f"stride {stride} exceeds window {window} along the {axis}: some pixels "
                    "would never be occluded; use stride <= window"
                )
        return cls(int(size[0]), int(size[1]), window, stride)

    @property
    def counts(self) -> tuple[int, int]:
        """Number of window positions along rows and columns."""
        return (
            math.ceil((self.height - self.window[0]) / self.stride[0]) + 1,
            math.ceil((self.width - self.window[1]) / self.stride[1]) + 1,
        )

    def __len__(self) -> int:
        rows, cols = self.counts
        return rows * cols

    def positions(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Top and left edges of every window, row-major (Captum's order)."""
        rows, cols = self.counts
        tops = torch.arange(rows, device=device) * self.stride[0]
        lefts = torch.arange(cols, device=device) * self.stride[1]
        return tops.repeat_interleave(cols), lefts.repeat(rows)

    def masks(self, tops: torch.Tensor, lefts: torch.Tensor) -> torch.Tensor:
        """Boolean masks ``(B, 1, H, W)``: True inside each window (cut at the image edge)."""
        row = torch.arange(self.height, device=tops.device)
        col = torch.arange(self.width, device=tops.device)
        in_rows = (row >= tops[:, None]) & (row < tops[:, None] + self.window[0])
        in_cols = (col >= lefts[:, None]) & (col < lefts[:, None] + self.window[1])
        return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]

    def attribution(self, drops: torch.Tensor) -> torch.Tensor:
        """Per-pixel mean of the score ``drops`` (one per position, row-major) over the windows
        covering each pixel: an ``(H, W)`` map."""
        grid = drops.double().reshape(1, 1, *self.counts)
        kernel = torch.ones(1, 1, *self.window, dtype=grid.dtype, device=grid.device)
        total = F.conv_transpose2d(grid, kernel, stride=self.stride)
        count = F.conv_transpose2d(torch.ones_like(grid), kernel, stride=self.stride)
        crop = (slice(None), slice(None), slice(0, self.height), slice(0, self.width))
        return (total[crop] / count[crop])[0, 0]
