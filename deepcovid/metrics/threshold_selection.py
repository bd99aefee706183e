"""Choose a cut-off on one split (validation) to apply unchanged to another (test).

Each rule reads the ROC curve of the validation scores; the chosen threshold is a validation
score, so applying it (COVID when ``prob_covid >= threshold``) reproduces that ROC point.
"""

from __future__ import annotations

import numpy as np

from deepcovid.metrics.discrimination import roc_curve
from deepcovid.metrics.undefined import UndefinedMetric

SELECTION_RULES = ("target_sensitivity", "youden", "target_specificity")
# torchmetrics returns float32 rates: 9/10 comes back as 0.8999999761…, so a rate counts as
# reaching its target within this tolerance (exact for any split under a million images).
RATE_TOLERANCE = 1e-6


def check_target(target: float, name: str) -> None:
    if not 0.0 < target <= 1.0:
        raise ValueError(f"{name}={target}: must lie in (0, 1]")


def threshold_for_sensitivity(label: np.ndarray, prob_covid: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity is at least ``target``: of all cut-offs that
    reach the target, the one with the best specificity."""
    check_target(target, "target_sensitivity")
    curve = roc_curve(label, prob_covid)
    reached = curve.y >= target - RATE_TOLERANCE  # sensitivity reaches 1 at the last point
    return float(curve.thresholds[np.argmax(reached)])


def threshold_for_specificity(label: np.ndarray, prob_covid: np.ndarray, target: float) -> float:
    """The lowest threshold whose specificity is at least ``target``: of all cut-offs that
    reach the target, the one with the best sensitivity."""
    check_target(target, "target_specificity")
    curve = roc_curve(label, prob_covid)
    reached = 1.0 - curve.x >= target - RATE_TOLERANCE  # the first point (0, 0) always does
    last = int(np.flatnonzero(reached)[-1])
    if last == 0:
        raise UndefinedMetric(
            f"no threshold reaches specificity ≥ {target} while calling any image COVID: "
            "the highest-scoring images are non-COVID"
        )
    return float(curve.thresholds[last])


def youden_threshold(label: np.ndarray, prob_covid: np.ndarray) -> float:
    """The threshold maximising Youden's J = sensitivity + specificity - 1 (the highest such
    threshold when several tie)."""
    curve = roc_curve(label, prob_covid)
    youden = curve.y - curve.x
    best = int(np.argmax(youden))
    if youden[best] <= 0:
        raise UndefinedMetric("Youden's J is ≤ 0 at every threshold: the scores do not separate")
    return float(curve.thresholds[best])


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
