"""Proportion intervals (statsmodels' proportion_confint): per image against scipy's binomial
test and the Wald formula by hand; per patient against exact special cases, scipy's ANOVA and
a coverage simulation."""

import numpy as np
import pytest
from scipy import stats

from deepcovid.metrics.bootstrap import bootstrap_interval
from deepcovid.metrics.intervals import (
    design_effect,
    proportion_interval,
    proportion_with_interval,
)
from deepcovid.metrics.undefined import UndefinedMetric

CASES = [(0, 1), (1, 1), (0, 5), (5, 5), (1, 10), (9, 10), (39, 40), (17, 60), (250, 1000)]
SCIPY = {"wilson": "wilson", "clopper_pearson": "exact"}


def wald(successes: int, total: int, confidence: float) -> tuple[float, float]:
    """The paper's ``p ± z·sqrt(p(1-p)/n)``, clipped to [0, 1]."""
    p, z = successes / total, stats.norm.ppf(0.5 + confidence / 2)
    half = z * np.sqrt(p * (1 - p) / total)
    return max(0.0, p - half), min(1.0, p + half)


def reference_interval(
    successes: int, total: int, method: str = "wilson", confidence: float = 0.95
) -> tuple[float, float]:
    """The interval from scipy's binomial test (Wilson, Clopper–Pearson) or :func:`wald`."""
    if method == "normal":
        return wald(successes, total, confidence)
    ci = stats.binomtest(successes, total).proportion_ci(confidence, SCIPY[method])
    return ci.low, ci.high


@pytest.mark.parametrize("method", [*SCIPY, "normal"])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize(("successes", "total"), CASES)
def test_matches_scipy_and_the_wald_formula(
    method: str, confidence: float, successes: int, total: int
) -> None:
    low, high = proportion_interval(successes, total, method, confidence)
    expected = reference_interval(successes, total, method, confidence)
    assert low == pytest.approx(expected[0], abs=1e-10)
    assert high == pytest.approx(expected[1], abs=1e-10)
    assert 0.0 <= low <= successes / total <= high <= 1.0


def test_wilson_by_hand() -> None:
    """9 of 10 at 95 %: Wilson's centre and half-width worked out from z = 1.959964."""
    z = 1.959963984540054
    centre = (0.9 + z**2 / 20) / (1 + z**2 / 10)
    half = z * np.sqrt(0.9 * 0.1 / 10 + z**2 / 400) / (1 + z**2 / 10)
    assert proportion_interval(9, 10) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert proportion_interval(9, 10) == pytest.approx((0.59585, 0.98212), abs=1e-5)


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


def clustered(rng: np.random.Generator, n_patients: int = 60, icc: float = 0.6, mean=0.5):
    """Patients with 1 + Poisson(1.6) images whose outcomes share a Beta-distributed patient
    probability (mean ``mean``, intra-patient correlation ``icc``)."""
    sizes = 1 + rng.poisson(1.6, n_patients)
    spread = 1 / icc - 1
    p = rng.beta(mean * spread, (1 - mean) * spread, n_patients)
    ids = np.repeat([f"p{i}" for i in range(n_patients)], sizes).astype(object)
    return rng.random(sizes.sum()) < np.repeat(p, sizes), ids


@pytest.mark.parametrize(("successes", "total"), [(0, 7), (3, 7), (7, 7), (17, 60), (155, 160)])
def test_one_image_per_patient_is_per_image_wilson(successes: int, total: int) -> None:
    hit = np.arange(total) < successes
    ids = np.array([f"p{i}" for i in range(total)], dtype=object)
    wilson = proportion_interval(successes, total)
    for method in ("auto", "deff_wilson"):
        estimate = proportion_with_interval(hit, ids, method)
        assert estimate.method == "deff_wilson" and estimate.design_effect == 1.0
        assert (estimate.low, estimate.high) == pytest.approx(wilson, abs=1e-12)
    plain = proportion_with_interval(hit)  # no ids: per-image Wilson, named so
    assert plain.method == "wilson" and plain.n_patients is None
    assert (plain.low, plain.high) == wilson


def test_identical_copies_count_once_per_patient() -> None:
    """k identical images per patient: ICC 1, deff k, so the interval is Wilson on patients."""
    rng = np.random.default_rng(0)
    per_patient = rng.random(40) < 0.7
    ids = np.repeat([f"p{i}" for i in range(40)], 3).astype(object)
    estimate = proportion_with_interval(np.repeat(per_patient, 3), ids)
    assert estimate.design_effect == pytest.approx(3.0) and estimate.effective_n == 40
    expected = proportion_interval(int(per_patient.sum()), 40)
    assert (estimate.low, estimate.high) == pytest.approx(expected, abs=1e-12)
    per_image = proportion_interval(3 * int(per_patient.sum()), 120)
    assert estimate.high - estimate.low > 1.5 * (per_image[1] - per_image[0])


def test_icc_is_the_one_way_anova_estimate_and_deff_is_kish() -> None:
    """ICC = (F − 1) / (F + n0 − 1) from scipy's one-way ANOVA F; deff from the sizes."""
    hit = np.array([1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0], dtype=bool)
    ids = np.array(list("aaabbbbccdddd"), dtype=object)
    groups = [hit[ids == g].astype(float) for g in "abcd"]
    sizes = np.array([len(g) for g in groups], dtype=float)
    f = stats.f_oneway(*groups).statistic
    n0 = (13 - np.sum(sizes**2) / 13) / 3
    effect = design_effect(hit, ids)
    assert effect.icc == pytest.approx((f - 1) / (f + n0 - 1))
    assert effect.weighted_mean_size == pytest.approx(np.sum(sizes**2) / 13)
    assert effect.design_effect == pytest.approx(1 + (np.sum(sizes**2) / 13 - 1) * effect.icc)
    assert effect.effective_n == pytest.approx(13 / effect.design_effect)
    assert effect.n_patients == 4


def test_negative_icc_is_capped_and_constant_outcomes_assume_full_correlation() -> None:
    # every patient has one hit and one miss: within-patient variation only, ICC < 0 → deff 1
    ids = np.repeat(["a", "b", "c", "d"], 2).astype(object)
    alternating = np.array([1, 0] * 4, dtype=bool)
    assert design_effect(alternating, ids).design_effect == 1.0
    # 100 % of 2+2+4 images: the ICC is 0/0; the conservative assumption is ICC = 1
    ids = np.array(list("aabbcccc"), dtype=object)
    effect = design_effect(np.ones(8, dtype=bool), ids)
    assert effect.icc == 1.0 and effect.effective_n == pytest.approx(64 / 24)
    estimate = proportion_with_interval(np.ones(8, dtype=bool), ids)
    assert estimate.high == 1.0 and estimate.low < proportion_interval(8, 8)[0]
    boot = proportion_with_interval(np.ones(8, dtype=bool), ids, "patient_bootstrap")
    assert (boot.low, boot.high) == (1.0, 1.0)  # why the bootstrap is not the default


def test_patient_bootstrap_resamples_patients() -> None:
    rng = np.random.default_rng(3)
    hit, ids = clustered(rng)
    estimate = proportion_with_interval(hit, ids, "patient_bootstrap", n_resamples=300, seed=4)
    rate = lambda _label, drawn: float(np.mean(drawn))  # noqa: E731
    drawn = bootstrap_interval(hit.astype(int), hit.astype(float), rate, ids, 300, seed=4)
    assert (estimate.low, estimate.high) == (drawn.low, drawn.high) and drawn.unit == "patient"
    assert estimate.n_patients == 60 and estimate.design_effect > 1


def test_issue_reproduction_per_image_wilson_is_too_narrow() -> None:
    """A clustered case like the issue's: 155 COVID images of 60 patients, 80 called COVID.
    Per-image Wilson gives the issue's 43.8–59.3 %; both patient-aware intervals are about
    1.5 times wider and agree with each other."""
    hit, ids = clustered(np.random.default_rng(5))
    assert (len(hit), int(hit.sum()), len(set(ids))) == (155, 80, 60)
    wilson = proportion_with_interval(hit, ids, "wilson")
    assert (round(wilson.low, 3), round(wilson.high, 3)) == (0.438, 0.593)
    deff = proportion_with_interval(hit, ids)
    boot = proportion_with_interval(hit, ids, "patient_bootstrap", n_resamples=2000)
    width = {e.method: e.high - e.low for e in (wilson, deff, boot)}
    assert width["deff_wilson"] > 1.4 * width["wilson"]
    assert width["patient_bootstrap"] > 1.4 * width["wilson"]
    assert width["deff_wilson"] == pytest.approx(width["patient_bootstrap"], rel=0.15)


def test_coverage_under_clustering() -> None:
    """300 simulated clustered test sets (true proportion 0.5, ICC 0.6): per-image Wilson
    covers the truth far less often than 95 %; the patient-aware intervals come close."""
    rng = np.random.default_rng(1)
    covered = {"wilson": 0, "deff_wilson": 0, "patient_bootstrap": 0}
    runs = 300
    for run in range(runs):
        hit, ids = clustered(rng)
        for method in covered:
            e = proportion_with_interval(hit, ids, method, n_resamples=300, seed=run)
            covered[method] += e.low <= 0.5 <= e.high
    coverage = {method: count / runs for method, count in covered.items()}
    assert coverage["wilson"] < 0.88
    assert coverage["deff_wilson"] > 0.91 and coverage["patient_bootstrap"] > 0.90


def test_patient_aware_undefined_cases_and_bad_input() -> None:
    with pytest.raises(UndefinedMetric, match="two patients"):
        proportion_with_interval(np.array([1, 0, 1]), np.array(["a", "a", "a"], dtype=object))
    with pytest.raises(UndefinedMetric, match="n = 0"):
        proportion_with_interval(np.array([], dtype=bool), np.array([], dtype=object))
    with pytest.raises(ValueError, match="deff_wilson"):
        proportion_with_interval(np.array([1, 0]), method="kish")
    with pytest.raises(ValueError, match="2 patient ids for 3 images"):
        proportion_with_interval(np.array([1, 0, 1]), np.array(["a", "b"], dtype=object))
    with pytest.raises(ValueError, match="booleans"):
        proportion_with_interval(np.array([0.2, 0.9]))
