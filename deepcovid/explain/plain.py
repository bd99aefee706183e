"""Plain occlusion scoring: build every occluded copy in full and run the model on the batch."""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepcovid.explain.grid import OcclusionGrid

ScoreFn = Callable[[torch.Tensor], torch.Tensor]


def as_scores(output: object, batch_size: int) -> torch.Tensor:
    """A model's output as ``(batch_size,)`` scores, or a clear error if it is not one per image."""
    if not isinstance(output, torch.Tensor) or output.numel() != batch_size:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(
            f"the model returned {shape} for a batch of {batch_size} images; occlusion needs one "
            "score per image, shape (N,): wrap the classifier so it returns P(COVID), e.g. "
            "deepcovid.explain.scoring.ProbCovid(net)"
        )
    return output.reshape(batch_size)


class PlainRunner:
    """Scores of occluded copies of one image, each computed by a full forward pass.

    Works for any callable mapping an ``(N, C, H, W)`` batch to ``(N,)`` scores.
    """

    def __init__(self, model: ScoreFn, grid: OcclusionGrid) -> None:
        self.model = model
        self.grid = grid
        self.image: torch.Tensor | None = None
        self.baseline: torch.Tensor | None = None

    def start(self, image: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        """Take a new ``(1, C, H, W)`` image and its baseline; return its unoccluded score."""
        self.image, self.baseline = image, baseline
        return as_scores(self.model(image), 1)[0]

    def occluded(self, tops: torch.Tensor, lefts: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of the image occluded by the windows at ``tops``/``lefts``."""
        batch = torch.where(self.grid.masks(tops, lefts), self.baseline, self.image)
        return as_scores(self.model(batch), len(tops))
