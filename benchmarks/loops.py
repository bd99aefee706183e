"""Plain PyTorch training and inference steps (the seed script's style) and their timing.

Imports only torch, so every benchmark (also ``gpu.py`` on bare GPU machines) can use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Batch = dict[str, Any]
Step = Callable[[Batch], None]
PRECISIONS = ("32-true", "bf16-mixed")


@dataclass
class Timing:
    """Images processed in a timed window, and how long it took."""

    images: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.images / self.seconds


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """bf16 autocast for ``bf16-mixed`` (as Lightning's precision plugin), else a no-op."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {list(PRECISIONS)}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")


def forever(batches: Iterable[Batch]) -> Iterator[Batch]:
    """Iterate ``batches`` again and again (a DataLoader starts a new epoch each time)."""
    while True:
        yield from batches


def timed(step: Step, batches: Iterable[Batch], warmup: int, steps: int, device: torch.device):
    """Run ``warmup`` untimed steps, then time ``steps`` steps (data loading included)."""
    source = forever(batches)
    for _ in range(warmup):
        step(next(source))
    synchronize(device)
    start = time.perf_counter()
    images = 0
    for _ in range(steps):
        batch = next(source)
        step(batch)
        images += len(batch["label"])
    synchronize(device)
    return Timing(images, time.perf_counter() - start)


def to_device(
    batch: Batch,
    device: torch.device,
    memory_format: torch.memory_format,
    finish: Callable[[torch.Tensor], torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (finished on the device when ``finish`` is given) and labels on ``device``."""
    images = batch["image"].to(device, non_blocking=True)
    if finish is not None:
        images = finish(images)
    labels = batch["label"].to(device, non_blocking=True)
    return images.contiguous(memory_format=memory_format), labels


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str = "32-true",
    memory_format: torch.memory_format = torch.contiguous_format,
    finish: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Step:
    """One optimisation step per batch: forward, cross-entropy, backward, Adam."""
    loss_fn = nn.CrossEntropyLoss()

    def step(batch: Batch) -> None:
        images, labels = to_device(batch, device, memory_format, finish)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = loss_fn(net(images), labels)
        loss.backward()
        optimizer.step()

    return step


def inference_step(
    net: nn.Module,
    device: torch.device,
    precision: str = "32-true",
    memory_format: torch.memory_format = torch.contiguous_format,
    finish: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Step:
    """Forward, loss and P(COVID) per batch, predictions kept (as an evaluation does)."""
    loss_fn = nn.CrossEntropyLoss()
    kept: list[torch.Tensor] = []

    @torch.inference_mode()
    def step(batch: Batch) -> None:
        images, labels = to_device(batch, device, memory_format, finish)
        with autocast(device, precision):
            logits = net(images)
            loss_fn(logits, labels)  # deepcovid's evaluation step logs the loss too
        kept.append(logits.float().softmax(1)[:, 1])

    return step
