"""Val-chosen thresholds against brute force over every candidate cut-off."""

import numpy as np
import pytest

from deepcovid.metrics.threshold_selection import (
    select_threshold,
    threshold_for_sensitivity,
    threshold_for_specificity,
    youden_threshold,
)
from deepcovid.metrics.undefined import UndefinedMetric


def rates(label: np.ndarray, prob: np.ndarray, threshold: float) -> tuple[float, float]:
    called = prob >= threshold
    return called[label == 1].mean(), (~called[label == 0]).mean()


def scores(seed: int, n: int = 70, decimals: int = 2):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    return label, np.round(np.clip(0.3 * label + 0.7 * rng.random(n), 0, 1), decimals)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("target", [0.5, 0.9, 0.98, 1.0])
def test_target_sensitivity_is_the_most_specific_threshold_reaching_it(seed, target) -> None:
    label, prob = scores(seed)
    chosen = threshold_for_sensitivity(label, prob, target)
    sensitivity, specificity = rates(label, prob, chosen)
    assert sensitivity >= target
    reaching = [t for t in np.unique(prob) if rates(label, prob, t)[0] >= target]
    assert chosen == max(reaching)
    assert specificity == max(rates(label, prob, t)[1] for t in reaching)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("target", [0.5, 0.9, 0.95])
def test_target_specificity_is_the_most_sensitive_threshold_reaching_it(seed, target) -> None:
    label, prob = scores(seed)
    chosen = threshold_for_specificity(label, prob, target)
    sensitivity, specificity = rates(label, prob, chosen)
    assert specificity >= target
    reaching = [t for t in np.unique(prob) if rates(label, prob, t)[1] >= target]
    assert chosen == min(reaching)
    assert sensitivity == max(rates(label, prob, t)[0] for t in reaching)


@pytest.mark.parametrize("seed", range(8))
def test_youden_maximises_j(seed: int) -> None:
    label, prob = scores(seed)
    chosen = youden_threshold(label, prob)
    j = {t: sum(rates(label, prob, t)) - 1 for t in np.unique(prob)}
    best = max(j.values())
    assert j[chosen] == pytest.approx(best)
    assert chosen == max(t for t, value in j.items() if value == pytest.approx(best))


def test_exact_fractions_reach_their_target_despite_float32_rates() -> None:
    label = np.array([1] * 10 + [0] * 10)
    prob = np.concatenate([np.linspace(0.55, 1.0, 10), np.linspace(0.0, 0.6, 10)])
    # 9 of 10 is exactly 0.9 but comes back from torchmetrics as 0.89999998
    assert rates(label, prob, threshold_for_specificity(label, prob, 0.9))[1] == 0.9
    assert rates(label, prob, threshold_for_sensitivity(label, prob, 0.9))[0] == 0.9


def test_perfect_separation() -> None:
    label, prob = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])
    assert threshold_for_sensitivity(label, prob, 0.98) == 0.8
    assert youden_threshold(label, prob) == 0.8
    assert threshold_for_specificity(label, prob, 0.9) == 0.8


def test_undefined_cases_say_why() -> None:
    with pytest.raises(UndefinedMetric, match="both classes"):
        threshold_for_sensitivity(np.array([1, 1]), np.array([0.2, 0.9]), 0.98)
    with pytest.raises(UndefinedMetric, match="do not separate"):
        youden_threshold(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9]))
    with pytest.raises(UndefinedMetric, match="highest-scoring images are non-COVID"):
        threshold_for_specificity(np.array([1, 0]), np.array([0.2, 0.9]), 0.9)
    with pytest.raises(ValueError, match="target_sensitivity"):
        threshold_for_sensitivity(np.array([1, 0]), np.array([0.9, 0.2]), 98)
    with pytest.raises(ValueError, match="youden"):
        select_threshold("best", np.array([1, 0]), np.array([0.9, 0.2]))
