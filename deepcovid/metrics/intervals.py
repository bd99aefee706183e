"""95 % (or any level) confidence intervals of a binomial proportion such as sensitivity."""

from __future__ import annotations

import math

from scipy import stats

from deepcovid.metrics.undefined import UndefinedMetric

INTERVAL_METHODS = ("wilson", "clopper_pearson", "normal")


def z_value(confidence: float) -> float:
    """The two-sided standard-normal quantile of ``confidence`` (1.96 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence}: must lie strictly between 0 and 1")
    return float(stats.norm.isf((1.0 - confidence) / 2.0))


def proportion_interval(
    successes: int, total: int, method: str = "wilson", confidence: float = 0.95
) -> tuple[float, float]:
    """Interval of ``successes / total``.

    ``wilson`` (score interval, the default), ``clopper_pearson`` (exact, conservative) or
    ``normal`` (Wald, the paper's ``p ± z·sqrt(p(1-p)/n)``, clipped to [0, 1]).
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"interval method {method!r}; choose one of {list(INTERVAL_METHODS)}")
    if not 0 <= successes <= total:
        raise ValueError(f"successes={successes} must lie between 0 and total={total}")
    if total == 0:
        raise UndefinedMetric("no cases to estimate a proportion from (n = 0)")
    z = z_value(confidence)
    p = successes / total
    if method == "normal":
        half = z * math.sqrt(p * (1.0 - p) / total)
        return max(0.0, p - half), min(1.0, p + half)
    if method == "wilson":
        denominator = 1.0 + z**2 / total
        centre = (p + z**2 / (2 * total)) / denominator
        half = z * math.sqrt(p * (1.0 - p) / total + z**2 / (4 * total**2)) / denominator
        return max(0.0, centre - half), min(1.0, centre + half)
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else stats.beta.ppf(alpha / 2, successes, total - successes + 1)
    high = (
        1.0 if successes == total else stats.beta.isf(alpha / 2, successes + 1, total - successes)
    )
    return float(low), float(high)
