"""Proportion intervals against statsmodels' proportion_confint."""

import pytest
from statsmodels.stats.proportion import proportion_confint

from deepcovid.metrics.intervals import proportion_interval
from deepcovid.metrics.undefined import UndefinedMetric

CASES = [(0, 1), (1, 1), (0, 5), (5, 5), (1, 10), (9, 10), (39, 40), (17, 60), (250, 1000)]
STATSMODELS = {"wilson": "wilson", "clopper_pearson": "beta", "normal": "normal"}


@pytest.mark.parametrize("method", STATSMODELS)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("successes", "total"), CASES)
def test_matches_statsmodels(method: str, confidence: float, successes: int, total: int) -> None:
    low, high = proportion_interval(successes, total, method, confidence)
    expected = proportion_confint(
        successes, total, alpha=1 - confidence, method=STATSMODELS[method]
    )
    if method == "normal":  # the Wald interval is clipped to [0, 1] here
        expected = (max(0.0, expected[0]), min(1.0, expected[1]))
    assert low == pytest.approx(expected[0], abs=1e-10)
    assert high == pytest.approx(expected[1], abs=1e-10)
    assert 0.0 <= low <= successes / total <= high <= 1.0


def test_wider_at_higher_confidence_and_exact_is_widest() -> None:
    narrow, wide = proportion_interval(9, 10, confidence=0.9), proportion_interval(9, 10)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    exact = proportion_interval(9, 10, "clopper_pearson")
    assert exact[0] < wide[0]


def test_empty_denominator_is_undefined_not_a_crash() -> None:
    with pytest.raises(UndefinedMetric, match="n = 0"):
        proportion_interval(0, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [((3, 2), "between 0 and total"), ((-1, 2), "between 0 and total")],
)
def test_bad_counts(args: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        proportion_interval(*args)


def test_bad_method_and_confidence() -> None:
    with pytest.raises(ValueError, match="wilson"):
        proportion_interval(1, 2, "agresti")
    with pytest.raises(ValueError, match="confidence"):
        proportion_interval(1, 2, confidence=95)
