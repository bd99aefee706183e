"""Val-chosen thresholds against brute force over every candidate cut-off."""

from fractions import Fraction

import numpy as np
import pytest

from deepcovid.metrics.threshold_selection import (
    SELECTION_RULES,
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


# A target rate's rule, the index of that rate in ``rates``, and which of the thresholds reaching
# the target it picks: the one that keeps the other rate highest.
TARGET_RULES = {
    "sensitivity": (threshold_for_sensitivity, 0, max),
    "specificity": (threshold_for_specificity, 1, min),
}
TARGETS = [("sensitivity", t) for t in (0.5, 0.9, 0.98, 1.0)] + [
    ("specificity", t) for t in (0.5, 0.9, 0.95)
]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("rate", "target"), TARGETS)
def test_target_rate_is_reached_at_the_best_threshold_for_the_other(seed, rate, target) -> None:
    """Sensitivity: the most specific threshold reaching it; specificity: the most sensitive."""
    select, targeted, pick = TARGET_RULES[rate]
    other = 1 - targeted
    label, prob = scores(seed)
    chosen = select(label, prob, target)
    reached = rates(label, prob, chosen)
    assert reached[targeted] >= target
    reaching = [t for t in np.unique(prob) if rates(label, prob, t)[targeted] >= target]
    assert chosen == pick(reaching)
    assert reached[other] == max(rates(label, prob, t)[other] for t in reaching)


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


def exact_rates(label: np.ndarray, prob: np.ndarray, t: float) -> tuple[Fraction, Fraction]:
    called = prob >= t
    positives, negatives = int((label == 1).sum()), int((label == 0).sum())
    tp, tn = int(called[label == 1].sum()), int((~called[label == 0]).sum())
    return Fraction(tp, positives), Fraction(tn, negatives)


def reference(rule: str, label: np.ndarray, prob: np.ndarray, target: Fraction) -> float | None:
    """The slow exact answer (None: undefined), straight from the documented rules."""
    candidates = sorted(set(prob.tolist()))
    rates = {t: exact_rates(label, prob, t) for t in candidates}
    if rule == "target_sensitivity":
        return max(t for t in candidates if rates[t][0] >= target)
    if rule == "target_specificity":
        reaching = [t for t in candidates if rates[t][1] >= target]
        return min(reaching) if reaching else None
    j = {t: rates[t][0] + rates[t][1] - 1 for t in candidates}
    best = max(j.values())
    return None if best <= 0 else max(t for t in candidates if j[t] == best)


TARGETS = [Fraction(1, 2), Fraction(9, 10), Fraction(49, 50), Fraction(3, 4), Fraction(2, 3), 1]


def test_every_rule_matches_the_exact_reference_on_thousands_of_tied_cases() -> None:
    """3000 small cases on a coarse score grid (ties between scores and between rates are
    common): every rule returns exactly the reference threshold, or both are undefined."""
    rng = np.random.default_rng(2024)
    checked = {rule: 0 for rule in SELECTION_RULES}
    for _ in range(3000):
        n = int(rng.integers(2, 13))
        label = np.concatenate([[0, 1], rng.integers(0, 2, n - 2)])
        prob = rng.choice(np.linspace(0.0, 1.0, 11), n)
        target = TARGETS[int(rng.integers(len(TARGETS)))]
        for rule in SELECTION_RULES:
            expected = reference(rule, label, prob, target)
            if expected is None:
                with pytest.raises(UndefinedMetric):
                    select_threshold(rule, label, prob, target)
            else:
                assert select_threshold(rule, label, prob, target) == expected, (rule, target)
                checked[rule] += 1
    assert min(checked.values()) > 1000  # each rule was defined in most cases


def test_youden_tie_returns_the_highest_threshold() -> None:
    """J = 1/5 at both 0.56 (3 of 5 COVID, 2 of 5 non-COVID called) and 1.0 (1 of 5, none):
    float32 rates made J(0.56) the larger and the old code returned 0.56."""
    label = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0])
    prob = np.array([0.44, 1.0, 0.16, 0.28, 0.56, 0.84, 0.08, 0.08, 0.76, 0.88])
    assert sum(exact_rates(label, prob, 0.56)) == sum(exact_rates(label, prob, 1.0))
    assert youden_threshold(label, prob) == 1.0


def test_float_targets_are_read_as_their_decimals() -> None:
    """49 of 50 reaches 0.98 (whose double is just below 49/50); 48 of 50 does not; a
    Fraction target is taken as is."""
    label = np.array([1] * 50 + [0] * 50)
    prob = np.concatenate([np.linspace(0.3, 1.0, 50), np.linspace(0.0, 0.5, 50)])
    chosen = threshold_for_sensitivity(label, prob, 0.98)
    assert chosen == prob[1] and exact_rates(label, prob, chosen)[0] == Fraction(49, 50)
    assert threshold_for_sensitivity(label, prob, Fraction(2, 3)) == prob[16]  # 34 of 50
    with pytest.raises(ValueError, match="target_specificity"):
        threshold_for_specificity(label, prob, "0.9")


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
