"""Percentile bootstrap intervals, resampling patients (clusters) rather than images.

Images of one patient are correlated; resampling them independently understates the spread.
With patient ids, each resample draws patients with replacement and keeps all their images;
images without an id count as their own patient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepcovid.metrics.undefined import UndefinedMetric

Statistic = Callable[[np.ndarray, np.ndarray], float]
# Below this share of resamples where the statistic exists (both classes drawn), the interval
# says more about the resampling than about the model: it is reported as undefined instead.
MIN_VALID_SHARE = 0.9


@dataclass(frozen=True)
class BootstrapInterval:
    """``low``–``high`` at ``confidence`` from ``n_valid`` of ``n_resamples`` resamples."""

    low: float
    high: float
    n_resamples: int
    n_valid: int
    unit: str  # "patient" or "image"


class Clusters:
    """Image indices grouped by patient; an image without a patient id is its own group."""

    def __init__(self, patient_id: pd.Series | np.ndarray | None, n: int) -> None:
        if patient_id is None:
            keys = [f"image:{i}" for i in range(n)]
        else:
            keys = [
                f"patient:{p}" if pd.notna(p) else f"image:{i}" for i, p in enumerate(patient_id)
            ]
        groups = list(pd.Series(range(n)).groupby(keys, sort=True).indices.values())
        self.rows = np.concatenate(groups) if groups else np.zeros(0, dtype=int)
        self.sizes = np.array([len(g) for g in groups], dtype=int)
        self.starts = np.cumsum(self.sizes) - self.sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """Image indices of as many patients as there are, drawn with replacement."""
        drawn = rng.integers(0, len(self), len(self))
        sizes = self.sizes[drawn]
        first = np.repeat(self.starts[drawn] - (np.cumsum(sizes) - sizes), sizes)
        return self.rows[first + np.arange(sizes.sum())]


def bootstrap_interval(
    label: np.ndarray,
    prob_covid: np.ndarray,
    statistic: Statistic,
    patient_id: pd.Series | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile interval of ``statistic(label, prob_covid)`` over seeded resamples.

    Resamples where the statistic is undefined (one class only) are dropped and counted; if
    fewer than :data:`MIN_VALID_SHARE` remain the interval is :class:`UndefinedMetric`.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}: need at least one bootstrap resample")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence}: must lie strictly between 0 and 1")
    label, prob_covid = np.asarray(label), np.asarray(prob_covid, dtype=np.float64)
    statistic(label, prob_covid)  # undefined on the data itself: say so, don't resample
    clusters = Clusters(patient_id, len(label))
    if len(clusters) < 2:
        raise UndefinedMetric("a bootstrap interval needs at least two patients")
    has_ids = patient_id is not None and bool(pd.notna(np.asarray(patient_id, object)).any())
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        rows = clusters.draw(rng)
        try:
            values.append(statistic(label[rows], prob_covid[rows]))
        except UndefinedMetric:
            continue
    if len(values) < MIN_VALID_SHARE * n_resamples:
        raise UndefinedMetric(
            f"only {len(values)} of {n_resamples} bootstrap resamples contain both classes; "
            "too few cases of one class for an interval"
        )
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    unit = "patient" if has_ids else "image"
    return BootstrapInterval(float(low), float(high), n_resamples, len(values), unit)


def mean_interval(
    values: np.ndarray,
    patient_id: pd.Series | np.ndarray | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Percentile interval of the mean of ``values`` (one per image, e.g. a hit as 0/1, a Dice
    score) over the same seeded resamples of patients as :func:`bootstrap_interval`."""
    values = np.asarray(values, dtype=np.float64)

    def mean(_label: np.ndarray, drawn: np.ndarray) -> float:
        return float(np.mean(drawn))

    return bootstrap_interval(values, values, mean, patient_id, n_resamples, confidence, seed)
