"""Approximate occlusion by coarse-to-fine drill-down.

Exact occlusion scores every window position. The drill-down scores a coarse lattice of them
(every ``step``-th position along each axis, the last one included), estimates the others by
bilinear interpolation between lattice neighbours, then scores exactly the ``refine_fraction``
of the remaining positions whose lattice neighbours dropped the score most. Salient regions
thus come out exact and flat ones interpolated, for roughly ``1/step² + refine_fraction`` of
the forward passes. ``occlusion(..., drilldown=Drilldown(step, refine_fraction))`` uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepcovid.explain.grid import OcclusionGrid
from deepcovid.explain.occlusion import Scorer, occluded_scores


def lattice(count: int, step: int) -> list[int]:
    """Every ``step``-th index of ``range(count)``, the last index always included."""
    indices = list(range(0, count, step))
    return indices if indices[-1] == count - 1 else [*indices, count - 1]


def neighbours(indices: list[int], count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of ``range(count)``: the lattice entries below and above it and the weight of
    the upper one in a linear interpolation."""
    lower = torch.tensor([max(k for k, i in enumerate(indices) if i <= j) for j in range(count)])
    upper = torch.clamp(lower + 1, max=len(indices) - 1)
    at = torch.tensor(indices, dtype=torch.float64)
    span = (at[upper] - at[lower]).clamp(min=1)
    weight = (torch.arange(count, dtype=torch.float64) - at[lower]) / span
    return lower, upper, weight


@dataclass(frozen=True)
class Drilldown:
    """The approximation's settings: lattice ``step`` and the ``refine_fraction`` of the other
    positions scored exactly (``step=1`` scores every position: exact occlusion)."""

    step: int = 2
    refine_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.step < 1 or not 0.0 <= self.refine_fraction <= 1.0:
            raise ValueError(
                f"step={self.step}, refine_fraction={self.refine_fraction}: need step >= 1 and "
                "0 <= refine_fraction <= 1"
            )

    def drops(
        self, scorer: Scorer, reference: torch.Tensor, grid: OcclusionGrid, batch_size: int
    ) -> torch.Tensor:
        """Score drops of every window position: exact on the lattice and the refined positions,
        interpolated elsewhere."""
        counts, device = grid.counts, reference.device
        tops, lefts = grid.positions(device)
        rows, cols = lattice(counts[0], self.step), lattice(counts[1], self.step)
        on_lattice = (torch.tensor(rows)[:, None] * counts[1] + torch.tensor(cols)).reshape(-1)
        on_lattice = on_lattice.to(device)
        coarse = reference - occluded_scores(
            scorer, (tops[on_lattice], lefts[on_lattice]), batch_size
        )
        coarse = coarse.double().reshape(len(rows), len(cols))
        r0, r1, rw = (t.to(device) for t in neighbours(rows, counts[0]))
        c0, c1, cw = (t.to(device) for t in neighbours(cols, counts[1]))
        top_row = coarse[r0] * (1 - rw[:, None]) + coarse[r1] * rw[:, None]
        drops = top_row[:, c0] * (1 - cw) + top_row[:, c1] * cw
        magnitude = coarse.abs()
        priority = (
            torch.stack([magnitude[r][:, c] for r in (r0, r1) for c in (c0, c1)])
            .amax(0)
            .reshape(-1)
        )
        drops = drops.reshape(-1)
        drops[on_lattice] = coarse.reshape(-1)
        priority[on_lattice] = -1.0
        refine = math.ceil(self.refine_fraction * (len(drops) - len(on_lattice)))
        chosen = priority.argsort(descending=True)[:refine]
        if refine:
            drops[chosen] = (
                reference - occluded_scores(scorer, (tops[chosen], lefts[chosen]), batch_size)
            ).double()
        return drops
