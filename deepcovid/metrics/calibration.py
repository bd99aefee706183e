"""Calibration of P(COVID): expected calibration error and the reliability diagram's bins.

Both use equal-width bins [0, 1/B), …, [(B-1)/B, 1]. torchmetrics gives a score of exactly 1.0
a bin of its own; scores are nudged below 1.0 first, so ECE and the bins agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional.classification import binary_calibration_error

from deepcovid.metrics.discrimination import as_tensors
from deepcovid.metrics.undefined import UndefinedMetric

BELOW_ONE = float(np.nextafter(1.0, 0.0))


@dataclass(frozen=True)
class ReliabilityBins:
    """Per bin: edges, mean P(COVID), observed COVID fraction and image count (empty bins:
    NaN mean and fraction, count 0)."""

    lower: np.ndarray
    upper: np.ndarray
    mean_prob_covid: np.ndarray
    fraction_covid: np.ndarray
    count: np.ndarray


def check_bins(n_bins: int) -> None:
    if n_bins < 1:
        raise ValueError(f"calibration_bins={n_bins}: need at least one bin")


def expected_calibration_error(
    label: np.ndarray, prob_covid: np.ndarray, n_bins: int = 10
) -> float:
    """Σ_bins (n_bin / n) · |fraction COVID − mean P(COVID)| (torchmetrics, L1 norm)."""
    check_bins(n_bins)
    if len(label) == 0:
        raise UndefinedMetric("calibration error needs at least one image")
    prob, target = as_tensors(label, prob_covid)
    prob = prob.clamp(max=BELOW_ONE)
    return float(binary_calibration_error(prob, target, n_bins=n_bins, norm="l1"))


def reliability_bins(
    label: np.ndarray, prob_covid: np.ndarray, n_bins: int = 10
) -> ReliabilityBins:
    """The reliability diagram's data: mean score against observed COVID fraction per bin."""
    check_bins(n_bins)
    prob = np.minimum(np.asarray(prob_covid, dtype=np.float64), BELOW_ONE)
    label = np.asarray(label, dtype=np.float64)
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64).numpy()  # as torchmetrics
    which = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(which, weights=prob, minlength=n_bins) / count
        fraction = np.bincount(which, weights=label, minlength=n_bins) / count
    return ReliabilityBins(edges[:-1], edges[1:], mean_prob, fraction, count)
