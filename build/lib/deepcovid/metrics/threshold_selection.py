"""Choose a cut-off on one split (validation) to apply unchanged to another (test).

The candidates are the distinct validation scores (an image is COVID when
``prob_covid >= threshold``), so applying the chosen one reproduces its validation counts.
Every rule works on the integer counts (tp, fp) at each candidate and compares rates as exact
fractions: equal rates are equal, and ties follow the documented rule, not the last bit of a
float. A target is reached when ``count >= target * n`` holds exactly; a float target is read
as the decimal it prints as (``0.98`` means 49/50, not the binary double just below it), so
pass a :class:`fractions.Fraction` for a target such as 2/3 that no decimal spells.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from deepcovid.metrics.inputs import checked_scores
from deepcovid.metrics.undefined import UndefinedMetric, require_both_classes

SELECTION_RULES = ("target_sensitivity", "youden", "target_specificity")


@dataclass(frozen=True)
class CandidateCounts:
    """At each distinct score ``threshold[k]`` (increasing): COVID (``tp``) and non-COVID
    (``fp``) images scoring at least that much, out of ``n_positive`` and ``n_negative``."""

    threshold: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_positive: int
    n_negative: int


def candidate_counts(label: np.ndarray, prob_covid: np.ndarray, metric: str) -> CandidateCounts:
    """Integer counts at every candidate threshold; both classes must be present."""
    label, prob = checked_scores(label, prob_covid)
    require_both_classes(label, metric)
    threshold = np.unique(prob)
    positive, negative = np.sort(prob[label == 1]), np.sort(prob[label == 0])
    tp = len(positive) - np.searchsorted(positive, threshold, side="left")
    fp = len(negative) - np.searchsorted(negative, threshold, side="left")
    return CandidateCounts(threshold, tp, fp, len(positive), len(negative))


def exact_target(target: float | Fraction, name: str) -> Fraction:
    """``target`` as an exact fraction in (0, 1] (a float as the decimal it prints as)."""
    if isinstance(target, bool) or not isinstance(target, int | float | Fraction | np.number):
        raise ValueError(f"{name}={target!r}: must be a number in (0, 1]")
    exact = target if isinstance(target, Fraction) else Fraction(str(float(target)))
    if not 0 < exact <= 1:
        raise ValueError(f"{name}={target}: must lie in (0, 1]")
    return exact


def reaches(count: np.ndarray, total: int, target: Fraction) -> np.ndarray:
    """``count / total >= target``, exactly (Python integers, no overflow)."""
    count = count.astype(object)
    return (count * target.denominator >= target.numerator * total).astype(bool)


def threshold_for_sensitivity(
    label: np.ndarray, prob_covid: np.ndarray, target: float | Fraction
) -> float:
    """The highest threshold whose sensitivity is at least ``target``: of all cut-offs that
    reach the target, the one with the best specificity (the lowest score always reaches it)."""
    exact = exact_target(target, "target_sensitivity")
    counts = candidate_counts(label, prob_covid, "target sensitivity")
    reached = reaches(counts.tp, counts.n_positive, exact)
    return float(counts.threshold[np.flatnonzero(reached)[-1]])


def threshold_for_specificity(
    label: np.ndarray, prob_covid: np.ndarray, target: float | Fraction
) -> float:
    """The lowest threshold whose specificity is at least ``target``: of all cut-offs that
    reach the target, the one with the best sensitivity."""
    exact = exact_target(target, "target_specificity")
    counts = candidate_counts(label, prob_covid, "target specificity")
    reached = reaches(counts.n_negative - counts.fp, counts.n_negative, exact)
    if not reached.any():
        raise UndefinedMetric(
            f"no threshold reaches specificity ≥ {target} while calling any image COVID: "
            "the highest-scoring images are non-COVID"
        )
    return float(counts.threshold[np.flatnonzero(reached)[0]])


def youden_threshold(label: np.ndarray, prob_covid: np.ndarray) -> float:
    """The threshold maximising Youden's J = sensitivity + specificity - 1, the highest such
    threshold when several tie. J is compared as the exact integer
    ``J · n_positive · n_negative = tp · n_negative - fp · n_positive``."""
    counts = candidate_counts(label, prob_covid, "Youden's J")
    scaled_j = counts.tp * counts.n_negative - counts.fp * counts.n_positive
    best = scaled_j.max()
    if best <= 0:
        raise UndefinedMetric("Youden's J is ≤ 0 at every threshold: the scores do not separate")
    return float(counts.threshold[np.flatnonzero(scaled_j == best)[-1]])


def select_threshold(
    rule: str, label: np.ndarray, prob_covid: np.ndarray, target: float | None = None
) -> float:
    """Dispatch on ``rule`` (one of :data:`SELECTION_RULES`)."""
    if rule == "target_sensitivity":
        return threshold_for_sensitivity(label, prob_covid, target)
    if rule == "target_specificity":
        return threshold_for_specificity(label, prob_covid, target)
    if rule == "youden":
        return youden_threshold(label, prob_covid)
    raise ValueError(f"threshold rule {rule!r}; choose one of {list(SELECTION_RULES)}")
