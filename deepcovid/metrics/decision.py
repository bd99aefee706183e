"""Decision-oriented numbers: predictive values at a given prevalence, likelihood ratios and
decision curves (net benefit).

Predictive values and likelihood ratios take counts at one threshold: COVID images called
COVID (``tp`` of ``n_covid``) and non-COVID images called non-COVID (``tn`` of
``n_non_covid``). Counts may be effective (non-integer) ones: passing
``value * effective_n, effective_n`` of the sensitivity's and specificity's
:class:`~deepcovid.metrics.intervals.ProportionEstimate` makes the intervals patient-aware.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.special import expit

from deepcovid.metrics.inputs import checked_scores
from deepcovid.metrics.intervals import Estimate, z_value
from deepcovid.metrics.undefined import UndefinedMetric

PREDICTIVE_VALUE_METHODS = ("auto", "logit", "adjusted_logit")
# Net benefit at threshold probabilities 1 %, 2 %, …, 99 %.
DEFAULT_THRESHOLDS = tuple(round(k / 100, 2) for k in range(1, 100))


def checked_counts(
    tp: float, n_covid: float, tn: float, n_non_covid: float
) -> tuple[float, float, float, float]:
    """The counts as floats, each hit count between 0 and its total, both totals > 0."""
    for hits, total, name in ((tp, n_covid, "tp"), (tn, n_non_covid, "tn")):
        if not 0 <= hits <= total:
            raise ValueError(f"{name}={hits} must lie between 0 and its total {total}")
    if n_covid == 0 or n_non_covid == 0:
        raise UndefinedMetric(
            f"needs COVID and non-COVID images; got {n_covid} COVID and {n_non_covid} non-COVID"
        )
    return float(tp), float(n_covid), float(tn), float(n_non_covid)


def check_prevalence(prevalence: float) -> None:
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence={prevalence}: must lie strictly between 0 and 1")


def ppv_at_prevalence(sensitivity: float, specificity: float, prevalence: float) -> float:
    """Bayes' rule: P(COVID | called COVID) = se·π / (se·π + (1 − sp)(1 − π))."""
    check_prevalence(prevalence)
    called = sensitivity * prevalence + (1.0 - specificity) * (1.0 - prevalence)
    if called == 0:
        raise UndefinedMetric("PPV is undefined: no image would be called COVID")
    return sensitivity * prevalence / called


def npv_at_prevalence(sensitivity: float, specificity: float, prevalence: float) -> float:
    """Bayes' rule: P(non-COVID | called non-COVID) = sp(1 − π) / (sp(1 − π) + (1 − se)π)."""
    check_prevalence(prevalence)
    called = specificity * (1.0 - prevalence) + (1.0 - sensitivity) * prevalence
    if called == 0:
        raise UndefinedMetric("NPV is undefined: no image would be called non-COVID")
    return specificity * (1.0 - prevalence) / called


def predictive_value(
    positive: bool,
    tp: float,
    n_covid: float,
    tn: float,
    n_non_covid: float,
    prevalence: float,
    confidence: float = 0.95,
    method: str = "auto",
) -> Estimate:
    """PPV (``positive``) or NPV at ``prevalence`` (Bayes' rule on sensitivity and specificity)
    with the logit interval of Mercaldo, Lau & Zhou (2007, Stat. Med. 26:2170), which treats
    sensitivity and specificity as independent binomials and the prevalence as known.

    ``logit``: the standard logit interval (their Eq. 8–11; needs 0 < sensitivity, specificity
    < 1). ``adjusted_logit``: the interval of the same on adjusted estimates (z²/2 added to the
    hits and z² to the totals, their Table II); the ``value`` stays Bayes' rule on the observed
    rates, so it is the number a reader recomputes. ``auto`` (the default): standard where
    defined, adjusted otherwise (as their recommendation and the R package bdpv do); ``method``
    in the result says which; an adjusted interval that misses the observed value (at a rate of
    0 or 1) is widened to include it. Undefined (with the reason) when Bayes' rule gives 0/0:
    no image would be called on that side.
    """
    if method not in PREDICTIVE_VALUE_METHODS:
        raise ValueError(
            f"predictive value method {method!r}; choose one of {list(PREDICTIVE_VALUE_METHODS)}"
        )
    tp, n_covid, tn, n_non_covid = checked_counts(tp, n_covid, tn, n_non_covid)
    check_prevalence(prevalence)
    z = z_value(confidence)
    se, sp = tp / n_covid, tn / n_non_covid
    at_prevalence = ppv_at_prevalence if positive else npv_at_prevalence
    estimate = at_prevalence(se, sp, prevalence)  # undefined when nothing is called on its side
    # logit PPV = log(se / (1 − sp)) + logit π is undefined at se = 0 or sp = 1 (NPV mirrors
    # it), and its variance vanishes at se = 1 or sp = 0: a zero-width interval. Both ends are
    # where the adjusted interval is recommended.
    standard_defined = 0 < se < 1 and 0 < sp < 1
    if method == "logit" and not standard_defined:
        name = "PPV" if positive else "NPV"
        raise UndefinedMetric(
            f"the standard logit interval of the {name} needs 0 < rate < 1 where it divides; "
            f"got sensitivity {se:.4g} and specificity {sp:.4g} (use method='adjusted_logit')"
        )
    if method == "adjusted_logit" or not standard_defined:
        method = "adjusted_logit"  # Mercaldo et al., Table II: add z²/2 hits to z² trials
        n_covid, n_non_covid = n_covid + z**2, n_non_covid + z**2
        se, sp = (tp + z**2 / 2) / n_covid, (tn + z**2 / 2) / n_non_covid
    else:
        method = "logit"
    odds = prevalence / (1.0 - prevalence)
    if positive:
        centre = math.log(se / (1.0 - sp) * odds)
        variance = (1.0 - se) / se / n_covid + sp / (1.0 - sp) / n_non_covid
    else:
        centre = math.log(sp / (1.0 - se) / odds)
        variance = se / (1.0 - se) / n_covid + (1.0 - sp) / sp / n_non_covid
    half = z * math.sqrt(variance)
    low, high = expit(centre - half), expit(centre + half)
    if method == "logit":
        return Estimate(float(expit(centre)), float(low), float(high), confidence, method)
    # At a rate of 0 or 1 the adjustment can move the interval past the observed value (e.g. PPV
    # 1 at specificity 1, interval 0.81-0.99): it is widened to include it, as Wilson's does.
    return Estimate(
        estimate, min(float(low), estimate), max(float(high), estimate), confidence, method
    )


#: PPV / NPV with their interval: :func:`predictive_value` for one side.
ppv_with_interval = partial(predictive_value, True)
npv_with_interval = partial(predictive_value, False)


def log_method(ratio: float, log_se: float, confidence: float, method: str) -> Estimate:
    """``ratio`` with the interval exp(log ratio ± z · SE(log ratio))."""
    half = z_value(confidence) * log_se
    return Estimate(ratio, ratio * math.exp(-half), ratio * math.exp(half), confidence, method)


def positive_likelihood_ratio(
    tp: float, n_covid: float, tn: float, n_non_covid: float, confidence: float = 0.95
) -> Estimate:
    """LR+ = sensitivity / (1 − specificity) with the log-method interval of Simel, Samsa &
    Matchar (1991, J. Clin. Epidemiol. 44:763): SE(log LR+)² = 1/tp − 1/n_covid + 1/fp −
    1/n_non_covid. Undefined (with the reason) when no non-COVID image is called COVID (LR+
    infinite) or no COVID image is (LR+ = 0, no log interval)."""
    tp, n_covid, tn, n_non_covid = checked_counts(tp, n_covid, tn, n_non_covid)
    fp = n_non_covid - tn
    if fp == 0:
        raise UndefinedMetric("LR+ is infinite: specificity is 1 (no false positives)")
    if tp == 0:
        raise UndefinedMetric("LR+ is 0 (no true positives): its log-method interval is undefined")
    log_se = math.sqrt(1 / tp - 1 / n_covid + 1 / fp - 1 / n_non_covid)
    ratio = (tp / n_covid) / (fp / n_non_covid)
    return log_method(ratio, log_se, confidence, "log")


def negative_likelihood_ratio(
    tp: float, n_covid: float, tn: float, n_non_covid: float, confidence: float = 0.95
) -> Estimate:
    """LR− = (1 − sensitivity) / specificity with the log-method interval of Simel et al.
    (1991): SE(log LR−)² = 1/fn − 1/n_covid + 1/tn − 1/n_non_covid. Undefined when
    specificity is 0 (LR− infinite) or sensitivity is 1 (LR− = 0, no log interval)."""
    tp, n_covid, tn, n_non_covid = checked_counts(tp, n_covid, tn, n_non_covid)
    fn = n_covid - tp
    if tn == 0:
        raise UndefinedMetric("LR− is infinite: specificity is 0 (no true negatives)")
    if fn == 0:
        raise UndefinedMetric(
            "LR− is 0: sensitivity is 1 (no false negatives), its log-method interval is undefined"
        )
    log_se = math.sqrt(1 / fn - 1 / n_covid + 1 / tn - 1 / n_non_covid)
    ratio = (fn / n_covid) / (tn / n_non_covid)
    return log_method(ratio, log_se, confidence, "log")


@dataclass(frozen=True)
class DecisionCurve:
    """Net benefit against threshold probability p_t (Vickers & Elkin 2006, Med. Decis.
    Making 26:565): of the model (act on images with P(COVID) ≥ p_t), of acting on all and on
    none, on ``n`` images with COVID ``prevalence``."""

    threshold: np.ndarray
    model: np.ndarray
    treat_all: np.ndarray
    treat_none: np.ndarray
    prevalence: float
    n: int


def decision_curve(
    label: np.ndarray, prob_covid: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> DecisionCurve:
    """Net benefit = TP/n − FP/n · p_t / (1 − p_t) at each threshold in (0, 1); acting on all
    gives π − (1 − π) · p_t / (1 − p_t), acting on none 0."""
    label, prob = checked_scores(label, prob_covid)
    if label.size == 0:
        raise UndefinedMetric("a decision curve needs at least one image")
    threshold = np.asarray(thresholds, dtype=np.float64)
    if threshold.ndim != 1 or threshold.size == 0 or not ((threshold > 0) & (threshold < 1)).all():
        raise ValueError("decision-curve thresholds must be probabilities strictly in (0, 1)")
    weight = threshold / (1.0 - threshold)  # the odds p_t / (1 − p_t): harm per benefit
    called = prob[None, :] >= threshold[:, None]
    tp = (called & (label == 1)).sum(axis=1)
    fp = (called & (label == 0)).sum(axis=1)
    n = label.size
    prevalence = float(label.mean())
    return DecisionCurve(
        threshold,
        tp / n - fp / n * weight,
        prevalence - (1.0 - prevalence) * weight,
        np.zeros_like(threshold),
        prevalence,
        n,
    )
