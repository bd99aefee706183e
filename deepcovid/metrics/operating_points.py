"""Sensitivity and specificity at a cut-off, with counts and intervals (patient-aware when
patient ids exist), and what they mean for a decision: PPV and NPV at a prevalence, likelihood
ratios.

Convention everywhere: an image is called COVID when ``prob_covid >= threshold``, the same rule
that places the points of the ROC curve, so a threshold read off a curve reproduces its point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from torchmetrics.functional.classification import binary_confusion_matrix

from deepcovid.metrics.decision import (
    negative_likelihood_ratio,
    npv_with_interval,
    positive_likelihood_ratio,
    ppv_with_interval,
)
from deepcovid.metrics.discrimination import as_tensors
from deepcovid.metrics.inputs import PatientIds, checked_ids
from deepcovid.metrics.intervals import (
    Estimate,
    ProportionEstimate,
    proportion_with_interval,
    resolved_method,
)
from deepcovid.metrics.undefined import UndefinedMetric

Interval = tuple[float | None, float | None]
NO_INTERVAL: Interval = (None, None)
Scalar = float | int | None  # a value of a result's flat keys (``scalars()``)
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


def with_bounds(name: str, value: float | None, ci: Interval) -> dict[str, Scalar]:
    """``name``, ``name_low`` and ``name_high``: an estimate and its interval as flat keys."""
    return {name: value, f"{name}_low": ci[0], f"{name}_high": ci[1]}


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
    """Sensitivity and specificity (with intervals and counts) at one threshold, and PPV, NPV
    (at ``prevalence``) and likelihood ratios.

    ``name`` says where the threshold comes from (``fixed``, or a rule applied on the split
    ``chosen_on``); ``interval`` how the sensitivity and specificity intervals were made
    (``deff_wilson`` with patient ids by default, see :mod:`deepcovid.metrics.intervals`); a
    None estimate has its reason in ``undefined``.
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
    interval: str | None = None
    prevalence: float | None = None
    ppv: Estimate | None = None
    npv: Estimate | None = None
    lr_positive: Estimate | None = None
    lr_negative: Estimate | None = None
    undefined: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``youden``, ``target_sensitivity``… or ``fixed@0.2``: the point in flat keys."""
        return f"fixed@{self.threshold:g}" if self.name == "fixed" else self.name

    def scalars(self) -> dict[str, Scalar]:
        """The point as flat keys: threshold, sensitivity and specificity with ``_low`` and
        ``_high``, tp, fp, tn, fn (None where undefined)."""
        counts = (
            dict.fromkeys(("tp", "fp", "tn", "fn")) if self.counts is None else vars(self.counts)
        )
        return {
            "threshold": self.threshold,
            **with_bounds("sensitivity", self.sensitivity, self.sensitivity_ci),
            **with_bounds("specificity", self.specificity, self.specificity_ci),
            **counts,
        }


def class_ids(patient_id: PatientIds, label: np.ndarray, value: int) -> np.ndarray | None:
    """The patient ids of the images of one class."""
    return None if patient_id is None else np.asarray(patient_id, dtype=object)[label == value]


def decision_numbers(
    sensitivity: ProportionEstimate,
    specificity: ProportionEstimate,
    prevalence: float,
    confidence: float,
    undefined: dict[str, str],
) -> dict[str, Estimate | None]:
    """PPV, NPV and likelihood ratios with intervals, on the effective counts behind the
    (patient-aware) sensitivity and specificity; None with the reason where undefined."""
    counts = (
        sensitivity.value * sensitivity.effective_n,
        sensitivity.effective_n,
        specificity.value * specificity.effective_n,
        specificity.effective_n,
    )
    numbers = {}
    for name, compute in (
        ("ppv", lambda: ppv_with_interval(*counts, prevalence, confidence)),
        ("npv", lambda: npv_with_interval(*counts, prevalence, confidence)),
        ("lr_positive", lambda: positive_likelihood_ratio(*counts, confidence)),
        ("lr_negative", lambda: negative_likelihood_ratio(*counts, confidence)),
    ):
        try:
            numbers[name] = compute()
        except UndefinedMetric as reason:
            numbers[name] = None
            undefined[name] = str(reason)
    return numbers


def operating_point(
    label: np.ndarray,
    prob_covid: np.ndarray,
    threshold: float,
    name: str = "fixed",
    interval: str = "auto",
    confidence: float = 0.95,
    target: float | None = None,
    chosen_on: str | None = None,
    patient_id: PatientIds = None,
    prevalence: float | None = None,
    seed: int = 0,
) -> OperatingPoint:
    """Apply ``threshold`` to the scores; None (with the reason) for a class that is absent.

    ``prevalence`` (default: the split's own) is the one PPV and NPV are computed at.
    """
    label, prob = np.asarray(label), np.asarray(prob_covid, dtype=np.float64)
    counts = counts_at(label, prob, threshold)
    called = prob >= threshold
    estimates: dict[str, object] = {}
    undefined: dict[str, str] = {}
    rates: dict[str, ProportionEstimate] = {}
    # one kind for both rates, from the whole split's ids (a class without ids gets the same
    # numbers as per-image Wilson under deff_wilson), so the point's label is true of both
    interval = resolved_method(interval, checked_ids(patient_id, label.size))
    for metric, hit, value, absent in (
        ("sensitivity", called[label == 1], 1, "COVID"),
        ("specificity", ~called[label == 0], 0, "non-COVID"),
    ):
        if hit.size == 0:
            reason = f"{metric} needs {absent} cases; there are none"
            undefined |= {metric: reason, f"{metric}_ci": reason}
            continue
        try:
            rate = proportion_with_interval(
                hit, class_ids(patient_id, label, value), interval, confidence, seed=seed
            )
        except UndefinedMetric as reason:  # e.g. a patient-aware interval of one patient
            estimates[metric] = float(hit.mean())
            undefined[f"{metric}_ci"] = str(reason)
            continue
        rates[metric] = rate
        estimates |= {metric: rate.value, f"{metric}_ci": (rate.low, rate.high)}
    if prevalence is None and label.size:
        prevalence = float(label.mean())
    if len(rates) == 2 and prevalence is not None and 0.0 < prevalence < 1.0:
        estimates |= decision_numbers(
            rates["sensitivity"], rates["specificity"], prevalence, confidence, undefined
        )
    elif len(rates) == 2:
        undefined |= dict.fromkeys(("ppv", "npv"), f"prevalence {prevalence}: needs 0 < π < 1")
    else:
        undefined |= dict.fromkeys(
            ("ppv", "npv", "lr_positive", "lr_negative"),
            "needs sensitivity and specificity with their intervals",
        )
    return OperatingPoint(
        name, float(threshold), **estimates, counts=counts, target=target, chosen_on=chosen_on,
        interval=interval if rates else None, prevalence=prevalence, undefined=undefined,
    )  # fmt: skip


def unavailable_point(
    name: str, reason: str, target: float | None = None, chosen_on: str | None = None
) -> OperatingPoint:
    """An operating point whose threshold could not be chosen: every estimate None, ``reason``."""
    return OperatingPoint(
        name, None, target=target, chosen_on=chosen_on, undefined=dict.fromkeys(ESTIMATES, reason)
    )
