"""Occlusion sensitivity (Zeiler & Fergus), numerically equal to Captum's ``Occlusion``.

``occlusion(model, x, window, stride)`` slides a ``window`` over each image (all channels at
once), replaces it with ``baseline`` and records how much the score drops; a pixel's
attribution is the mean drop over the windows that cover it, exactly as
``captum.attr.Occlusion(model).attribute(x, sliding_window_shapes=(C, *window),
strides=(C, *stride), baselines=baseline)``.

Two exact ways to score the occluded copies: ``plain`` runs the model on batches of full copies
(any callable); ``incremental`` recomputes only what each occlusion changes (an ``nn.Module``
in eval mode that ``torch.fx`` can trace). ``auto`` picks incremental when it applies on the
CPU, and plain on a GPU: on an H200, batched full copies were 1.09–1.40× faster than Captum's
batched occlusion and incremental inference 0.41–0.70× (benchmarks/README.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from deepcovid.explain.grid import OcclusionGrid
from deepcovid.explain.incremental import (
    FULL_FRACTION,
    IncrementalRunner,
    IncrementalUnsupportedError,
)
from deepcovid.explain.plain import PlainRunner
from deepcovid.utils.choices import checked_choice, choices

log = logging.getLogger(__name__)
METHODS = ("auto", "incremental", "plain")
OcclusionMethod = choices("OcclusionMethod", METHODS)  # explainer.method's type


class OcclusionRunner(Protocol):
    """Scores of occluded copies of one image at a time."""

    def start(self, image: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor: ...

    def occluded(self, tops: torch.Tensor, lefts: torch.Tensor) -> torch.Tensor: ...


def make_runner(
    model: Callable[[torch.Tensor], torch.Tensor],
    grid: OcclusionGrid,
    method: str = "auto",
    full_fraction: float = FULL_FRACTION,
    device_type: str = "cpu",
) -> OcclusionRunner:
    """The runner ``method`` asks for; ``auto`` is plain on a GPU (``device_type`` cuda) and
    falls back to plain when incremental inference does not apply (not an ``nn.Module``,
    training mode, untraceable)."""
    method = checked_choice("method", method, OcclusionMethod)
    if method == "plain" or (method == "auto" and device_type == "cuda"):
        return PlainRunner(model, grid)
    if not isinstance(model, nn.Module):
        if method == "incremental":
            raise IncrementalUnsupportedError(
                "incremental occlusion needs an nn.Module; use method='plain' for a callable"
            )
        return PlainRunner(model, grid)
    try:
        return IncrementalRunner(model, grid, full_fraction)
    except IncrementalUnsupportedError as error:
        if method == "incremental":
            raise
        log.info("incremental occlusion does not apply (%s): using plain occlusion", error)
        return PlainRunner(model, grid)


def broadcast_baseline(baseline: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``baseline`` (a number or a tensor broadcastable to ``x``) as a tensor shaped like ``x``."""
    baseline = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    try:
        return baseline.expand_as(x)
    except RuntimeError as error:
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} does not broadcast to the input "
            f"{tuple(x.shape)}: pass a number or a tensor shaped like the input"
        ) from error


def occluded_scores(
    runner: OcclusionRunner, positions: tuple[torch.Tensor, torch.Tensor], batch_size: int
) -> torch.Tensor:
    """Scores of the image occluded at each of ``positions``, ``batch_size`` copies at a time
    (after ``runner.start``)."""
    tops, lefts = positions
    scores = [
        runner.occluded(tops[i : i + batch_size], lefts[i : i + batch_size])
        for i in range(0, len(tops), batch_size)
    ]
    return torch.cat(scores) if scores else tops.new_zeros(0, dtype=torch.float32)


def check_input(x: torch.Tensor, batch_size: int) -> None:
    if x.dim() != 4:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected a batch (N, C, H, W)")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected a positive number of copies")


def occlusion(
    model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    window: int | tuple[int, int],
    stride: int | tuple[int, int],
    baseline: float | torch.Tensor = 0.0,
    batch_size: int = 32,
    method: str = "auto",
    full_fraction: float = FULL_FRACTION,
) -> torch.Tensor:
    """Occlusion attribution shaped like ``x`` (equal across channels).

    ``model`` maps ``(N, C, H, W)`` to ``(N,)`` scores; ``window``/``stride`` are ints or
    (rows, columns) pairs; at most ``batch_size`` occluded copies are evaluated at once, which
    bounds memory. ``method``: ``auto`` | ``incremental`` | ``plain`` (see module docstring);
    ``full_fraction`` tunes incremental inference (see :class:`IncrementalRunner`).
    """
    check_input(x, batch_size)
    grid = OcclusionGrid.create(tuple(x.shape[-2:]), window, stride)
    baselines = broadcast_baseline(baseline, x)
    runner = make_runner(model, grid, method, full_fraction, x.device.type)
    maps = []
    with torch.inference_mode():
        for i in range(len(x)):
            reference = runner.start(x[i : i + 1], baselines[i : i + 1])
            drops = reference - occluded_scores(runner, grid.positions(x.device), batch_size)
            maps.append(grid.attribution(drops))
    attribution = torch.stack(maps).to(x.dtype if x.is_floating_point() else torch.float32)
    return attribution[:, None].expand(x.shape).clone()
