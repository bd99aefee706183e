"""Sensitivity and specificity at a cut-off, with counts and binomial intervals.

Convention everywhere: an image is called COVID when ``prob_covid >= threshold``, the same rule
that places the points of the ROC curve, so a threshold read off a curve reproduces its point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from torchmetrics.functional.classification import binary_confusion_matrix

from deepcovid.metrics.discrimination import as_tensors
from deepcovid.metrics.intervals import proportion_interval

Interval = tuple[float | None, float | None]
NO_INTERVAL: Interval = (None, None)
ESTIMATES = ("threshold", "sensitivity", "sensitivity_ci", "specificity", "specificity_ci")


@dataclass(frozen=True)
class Counts:
    """Confusion counts at one threshold (positive class = COVID)."""

    tp: int
    fp: int
    tn: int
    fn: int

    def matrix(self) -> np.ndarray:
        """2×2, rows = true class, columns = called class, in the order (non-COVID, COVID)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]])


def counts_at(label: np.ndarray, prob_covid: np.ndarray, threshold: float) -> Counts:
    """tp, fp, tn, fn when COVID is called for ``prob_covid >= threshold``."""
    if math.isnan(threshold):
        raise ValueError("threshold is NaN")
    prob, target = as_tensors(label, prob_covid)
    called = (prob >= threshold).long()  # integer predictions: torchmetrics applies no cut-off
    (tn, fp), (fn, tp) = binary_confusion_matrix(called, target, validate_args=False).tolist()
    return Counts(tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn))


@dataclass(frozen=True)
class OperatingPoint:
    """Sensitivity and specificity (with intervals and counts) at one threshold.

    ``name`` says where the threshold comes from (``fixed``, or a rule applied on the split
    ``chosen_on``); a None estimate has its reason in ``undefined``.
    """

    name: str
    threshold: float | None
    sensitivity: float | None = None
    sensitivity_ci: Interval = NO_INTERVAL
    specificity: float | None = None
    specificity_ci: Interval = NO_INTERVAL
    counts: Counts | None = None
    target: float | None = None
    chosen_on: str | None = None
    undefined: dict[str, str] = field(default_factory=dict)


def operating_point(
    label: np.ndarray,
    prob_covid: np.ndarray,
    threshold: float,
    name: str = "fixed",
    interval: str = "wilson",
    confidence: float = 0.95,
    target: float | None = None,
    chosen_on: str | None = None,
) -> OperatingPoint:
    """Apply ``threshold`` to the scores; None (with the reason) for a class that is absent."""
    counts = counts_at(label, prob_covid, threshold)
    estimates: dict[str, object] = {}
    undefined: dict[str, str] = {}
    for metric, hits, total, absent in (
        ("sensitivity", counts.tp, counts.tp + counts.fn, "COVID"),
        ("specificity", counts.tn, counts.tn + counts.fp, "non-COVID"),
    ):
        if total == 0:
            reason = f"{metric} needs {absent} cases; there are none"
            undefined |= {metric: reason, f"{metric}_ci": reason}
            continue
        estimates[metric] = hits / total
        estimates[f"{metric}_ci"] = proportion_interval(hits, total, interval, confidence)
    return OperatingPoint(
        name, float(threshold), **estimates, counts=counts, target=target,
        chosen_on=chosen_on, undefined=undefined,
    )  # fmt: skip


def unavailable_point(
    name: str, reason: str, target: float | None = None, chosen_on: str | None = None
) -> OperatingPoint:
    """An operating point whose threshold could not be chosen: every estimate None, ``reason``."""
    return OperatingPoint(
        name, None, target=target, chosen_on=chosen_on, undefined=dict.fromkeys(ESTIMATES, reason)
    )
