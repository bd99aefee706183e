"""Class balancing and the order of training images.

:class:`TrainingSampler` draws each epoch's images from one seeded plan in which each
minority-class image (COVID in COVID-Xray-5k) appears ``factor`` times (the paper's ~5×
augmentation; ``factor=1`` is a plain shuffle). It is a
:class:`~torch.utils.data.DistributedSampler`, so Lightning leaves it in place under DDP: every
rank draws a disjoint share of the plan. Each draw carries its own augmentation seed, a function
of (seed, epoch, draw number) only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


def augmentation_seeds(seed: int, epoch: int, draws: np.ndarray) -> np.ndarray:
    """A 63-bit seed per draw number, from (seed, epoch, draw) alone."""
    base = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint64)
    mixed = (draws.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ base[0]
    mixed ^= mixed >> np.uint64(31)
    mixed = mixed * np.uint64(0xBF58476D1CE4E5B9) + base[1]
    return (mixed >> np.uint64(1)).astype(np.int64)


class TrainingSampler(DistributedSampler):
    """Repeat minority-class samples ``factor`` times, shuffle per epoch, shard across ranks;
    yields ``(position, augmentation seed)`` pairs."""

    def __init__(
        self,
        dataset: Dataset,
        labels: Sequence[int],
        factor: int = 1,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        if factor < 1:
            raise ValueError(f"data.oversample_factor must be ≥ 1, got {factor}")
        labels = np.asarray(labels)
        self.minority = int(np.argmin(np.bincount(labels, minlength=2)))
        repeats = np.where(labels == self.minority, factor, 1)
        self.plan = np.repeat(np.arange(len(labels)), repeats)
        self.num_samples = -(-len(self.plan) // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = self.plan[torch.randperm(len(self.plan), generator=generator).numpy()]
        padded = np.resize(order, self.total_size)  # wraps around, as DistributedSampler pads
        draws = np.arange(self.rank, self.total_size, self.num_replicas)
        seeds = augmentation_seeds(self.seed, self.epoch, draws)
        return iter(zip(padded[draws].tolist(), seeds.tolist(), strict=True))

    def __len__(self) -> int:
        return self.num_samples


def inverse_frequency_weights(labels: Sequence[int], num_classes: int = 2) -> torch.Tensor:
    """Cross-entropy class weights ∝ 1 / class count, scaled to average 1 over samples."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    if (counts == 0).any():
        raise ValueError(f"a class has no training samples (counts per class: {counts.tolist()})")
    weights = counts.sum() / (num_classes * counts)
    return torch.tensor(weights, dtype=torch.float32)
