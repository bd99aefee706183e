"""ECE against the reliability bins and a NumPy reference; Brier against scikit-learn;
calibration intercept/slope and recalibration against independent fits."""

import numpy as np
import pytest
from scipy import optimize
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from deepcovid.metrics.bootstrap import bootstrap_interval
from deepcovid.metrics.calibration import (
    PlattScaling,
    TemperatureScaling,
    brier_score,
    brier_with_interval,
    calibration_intercept,
    calibration_slope,
    expected_calibration_error,
    logit,
    reliability_bins,
)
from deepcovid.metrics.undefined import UndefinedMetric


def numpy_ece(label: np.ndarray, prob: np.ndarray, n_bins: int) -> float:
    which = np.minimum((prob * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(label[members].mean() - prob[members].mean())
    return total


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_ece_matches_bins_and_reference(seed: int, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    prob = rng.random(300)
    prob[:10] = 1.0  # scores of exactly 1.0 fall in the last bin
    prob[10:20] = 0.0
    label = (rng.random(300) < prob**2).astype(int)
    ece = expected_calibration_error(label, prob, n_bins)
    bins = reliability_bins(label, prob, n_bins)
    assert bins.count.sum() == 300
    weights = bins.count / bins.count.sum()
    from_bins = np.nansum(weights * np.abs(bins.fraction_covid - bins.mean_prob_covid))
    assert ece == pytest.approx(from_bins, abs=1e-6)
    assert ece == pytest.approx(numpy_ece(label, np.minimum(prob, 1 - 1e-12), n_bins), abs=1e-6)


def test_perfectly_calibrated_and_empty_bins() -> None:
    label = np.array([0, 1] * 50)
    prob = np.full(100, 0.5)
    assert expected_calibration_error(label, prob) == pytest.approx(0.0)
    bins = reliability_bins(label, prob, 10)
    assert bins.count[5] == 100 and bins.count.sum() == 100
    assert np.isnan(bins.mean_prob_covid[0]) and bins.fraction_covid[5] == 0.5


def test_single_image_and_bad_bins() -> None:
    assert expected_calibration_error(np.array([1]), np.array([0.75])) == pytest.approx(0.25)
    with pytest.raises(UndefinedMetric, match="at least one image"):
        expected_calibration_error(np.array([], dtype=int), np.array([]))
    with pytest.raises(ValueError, match="calibration_bins"):
        reliability_bins(np.array([1]), np.array([0.5]), 0)


def miscalibrated(n: int, intercept: float, slope: float, seed: int = 0):
    """Scores p and labels drawn with logit P(COVID) = intercept + slope · logit(p)."""
    rng = np.random.default_rng(seed)
    prob = rng.beta(2, 2, n)
    return (rng.random(n) < expit(intercept + slope * logit(prob))).astype(int), prob


def test_brier_matches_sklearn_and_resamples_patients() -> None:
    label, prob = miscalibrated(300, 0.0, 1.0)
    assert brier_score(label, prob) == pytest.approx(brier_score_loss(label, prob))
    ids = np.repeat([f"p{i}" for i in range(100)], 3).astype(object)
    by_patient = brier_with_interval(label, prob, ids, n_resamples=200, seed=2)
    drawn = bootstrap_interval(label, prob, brier_score, ids, 200, seed=2)
    assert (by_patient.low, by_patient.high) == (drawn.low, drawn.high)
    assert by_patient.method == "patient_bootstrap" and by_patient.low < by_patient.value
    assert brier_with_interval(label, prob, n_resamples=50).method == "image_bootstrap"
    assert brier_score(np.array([1, 1]), np.array([1.0, 0.5])) == pytest.approx(0.125)


@pytest.mark.parametrize(("intercept", "slope"), [(0.0, 1.0), (0.0, 2.0), (0.3, 0.5)])
def test_slope_and_intercept_against_independent_fits(intercept: float, slope: float) -> None:
    """Slope: unpenalised scikit-learn logistic regression on logit(p); intercept: the root of
    the offset model's score equation Σ (y − σ(α + logit p)) = 0. Both recover the truth."""
    label, prob = miscalibrated(4000, intercept, slope, seed=1)
    z = logit(prob)
    fitted = calibration_slope(label, prob)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000)
    reference.fit(z[:, None], label)
    assert fitted.value == pytest.approx(reference.coef_[0, 0], rel=1e-5)
    assert abs(fitted.value - slope) < 4 * (fitted.high - fitted.low) / (2 * 1.96)
    alpha = optimize.brentq(lambda a: np.sum(label - expit(a + z)), -10, 10, xtol=1e-12)
    in_the_large = calibration_intercept(label, prob)
    assert in_the_large.value == pytest.approx(alpha, abs=1e-7)
    assert in_the_large.low < in_the_large.value < in_the_large.high
    assert in_the_large.method == fitted.method == "wald"


def test_patient_robust_intervals_widen_for_copied_images() -> None:
    """Each patient's image repeated 4 times: the model-based interval pretends 4× the data;
    the patient-robust one is about twice as wide (√4), like that of one image per patient."""
    label, prob = miscalibrated(400, 0.2, 0.8, seed=3)
    ids = np.repeat([f"p{i}" for i in range(400)], 4).astype(object)
    copies = np.repeat(label, 4), np.repeat(prob, 4)
    for statistic in (calibration_slope, calibration_intercept):
        single = statistic(label, prob)
        naive, robust = statistic(*copies), statistic(*copies, ids)
        assert robust.method == "wald_patient_robust"
        assert naive.value == pytest.approx(robust.value) == pytest.approx(single.value)
        ratio = (robust.high - robust.low) / (naive.high - naive.low)
        assert ratio == pytest.approx(2.0, rel=0.15)
        assert robust.high - robust.low == pytest.approx(single.high - single.low, rel=0.15)


def test_platt_scaling_leaves_nothing_to_recalibrate() -> None:
    """Fitted on val, Platt's map equals the slope fit; refitting on its own output gives
    slope 1 and intercept 0 (the maximum-likelihood fixed point); applied to test it helps."""
    val, test = miscalibrated(2000, 0.4, 0.5, seed=4), miscalibrated(2000, 0.4, 0.5, seed=5)
    platt = PlattScaling.fit(*val)
    assert platt.slope == pytest.approx(calibration_slope(*val).value)
    recalibrated = platt.apply(val[1])
    assert calibration_slope(val[0], recalibrated).value == pytest.approx(1.0, abs=1e-6)
    assert calibration_intercept(val[0], recalibrated).value == pytest.approx(0.0, abs=1e-6)
    assert brier_score(test[0], platt.apply(test[1])) < brier_score(*test)
    assert abs(calibration_slope(test[0], platt.apply(test[1])).value - 1) < 0.2


def test_temperature_minimises_the_log_likelihood() -> None:
    label, prob = miscalibrated(3000, 0.0, 1 / 2.5, seed=6)  # logits 2.5× too extreme
    scaling = TemperatureScaling.fit(label, prob)
    z = logit(prob)

    def nll(log_t: float) -> float:
        return -np.sum(
            label * np.log(expit(z / np.exp(log_t)))
            + (1 - label) * np.log(expit(-z / np.exp(log_t)))
        )

    best = optimize.minimize_scalar(nll, bounds=(-3, 3), method="bounded", options={"xatol": 1e-9})
    assert scaling.temperature == pytest.approx(np.exp(best.x), rel=1e-5)
    assert scaling.temperature == pytest.approx(2.5, rel=0.15)
    assert scaling.apply(np.array([0.5]))[0] == pytest.approx(0.5)
    assert np.allclose(scaling.apply(prob), expit(z / scaling.temperature))


def test_saturated_scores_are_clipped_before_the_logit() -> None:
    assert logit(np.array([0.0, 1.0])) == pytest.approx([-13.8155, 13.8155], abs=1e-3)
    label = np.array([0, 1, 0, 1, 1, 0])
    prob = np.array([0.0, 1.0, 0.7, 0.2, 0.9, 0.1])
    assert np.isfinite(calibration_slope(label, prob).value)
    assert np.isfinite(calibration_intercept(label, prob).value)


def test_recalibration_undefined_cases_say_why() -> None:
    overlapping = np.array([0, 1, 0, 1]), np.array([0.2, 0.4, 0.6, 0.8])
    separated = np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.3, 0.8])  # tie at the cut-off
    for fit in (calibration_slope, PlattScaling.fit):
        with pytest.raises(UndefinedMetric, match="separates the classes"):
            fit(*separated)
    with pytest.raises(UndefinedMetric, match="T → 0"):
        TemperatureScaling.fit(np.array([0, 0, 1, 1]), np.array([0.1, 0.5, 0.6, 0.8]))
    with pytest.raises(UndefinedMetric, match="rank COVID above"):
        TemperatureScaling.fit(np.array([1, 0, 1, 0, 1]), np.array([0.1, 0.6, 0.3, 0.9, 0.55]))
    assert np.isfinite(calibration_intercept(*separated).value)  # the intercept still exists
    for statistic in (calibration_slope, calibration_intercept, PlattScaling.fit):
        with pytest.raises(UndefinedMetric, match="both classes"):
            statistic(np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9]))
        with pytest.raises(UndefinedMetric, match="at least 3 images"):
            statistic(np.array([0, 1]), np.array([0.2, 0.9]))
        with pytest.raises(UndefinedMetric, match="two distinct scores"):
            statistic(np.array([0, 1, 0]), np.full(3, 0.4))
    with pytest.raises(UndefinedMetric, match="two patients"):
        calibration_slope(*overlapping, np.array(["a"] * 4, dtype=object))
    with pytest.raises(UndefinedMetric, match="at least one image"):
        brier_score(np.array([], dtype=int), np.array([]))
    with pytest.raises(ValueError, match="probabilities"):
        calibration_slope(np.array([0, 1, 0]), np.array([0.2, 1.5, 0.3]))
