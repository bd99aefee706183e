"""Predictive values, likelihood ratios and decision curves against published worked examples
and hand computations."""

import math
from functools import partial

import numpy as np
import pytest

from deepcovid.metrics.decision import (
    DEFAULT_THRESHOLDS,
    decision_curve,
    negative_likelihood_ratio,
    npv_at_prevalence,
    npv_with_interval,
    positive_likelihood_ratio,
    ppv_at_prevalence,
    ppv_with_interval,
)
from deepcovid.metrics.intervals import proportion_with_interval
from deepcovid.metrics.undefined import UndefinedMetric

# van de Vijver et al. (2002) 70-gene signature as a case-control study: 31 of 34 cases and
# 32 of 44 controls classified correctly, prevalence 7 %. Published output of the R package
# CIfinder (vignette, method "zhou" = Mercaldo et al. 2007), without and with the adjustment.
BREAST = {"tp": 31, "n_covid": 34, "tn": 32, "n_non_covid": 44, "prevalence": 0.07}
STANDARD = {"ppv": (0.2010444, 0.1331384, 0.2919216), "npv": (0.9909508, 0.9734141, 0.9969560)}
ADJUSTED = {"ppv": (0.1836999, 0.1244835, 0.2626354), "npv": (0.9863836, 0.9688986, 0.9940985)}


@pytest.mark.parametrize(
    ("method", "published"), [("logit", STANDARD), ("adjusted_logit", ADJUSTED)]
)
def test_predictive_values_match_the_published_example(method: str, published: dict) -> None:
    se, sp = BREAST["tp"] / BREAST["n_covid"], BREAST["tn"] / BREAST["n_non_covid"]
    for name, function in (("ppv", ppv_with_interval), ("npv", npv_with_interval)):
        estimate = function(**BREAST, method=method)
        assert (estimate.low, estimate.high) == pytest.approx(published[name][1:], abs=5e-7)
        at_prevalence = ppv_at_prevalence if name == "ppv" else npv_at_prevalence
        # the value is Bayes' rule on the observed rates, also under the adjusted interval
        # (whose centre, the published adjusted estimate, is not what a reader recomputes)
        assert estimate.value == pytest.approx(at_prevalence(se, sp, BREAST["prevalence"]))
        if method == "logit":
            assert estimate.value == pytest.approx(published[name][0], abs=5e-7)
        assert estimate.method == method


def test_standard_estimate_is_bayes_rule() -> None:
    se, sp = 31 / 34, 32 / 44
    assert ppv_with_interval(**BREAST).value == pytest.approx(ppv_at_prevalence(se, sp, 0.07))
    assert npv_with_interval(**BREAST).value == pytest.approx(npv_at_prevalence(se, sp, 0.07))
    # by hand: se·π / (se·π + (1 − sp)(1 − π)) and sp(1 − π) / (sp(1 − π) + (1 − se)π)
    assert ppv_at_prevalence(0.9, 0.8, 0.1) == pytest.approx(0.09 / (0.09 + 0.18))
    assert npv_at_prevalence(0.9, 0.8, 0.1) == pytest.approx(0.72 / (0.72 + 0.01))


def test_auto_falls_back_to_the_adjusted_interval_at_the_boundary() -> None:
    perfect_sensitivity = {**BREAST, "tp": 34}
    with pytest.raises(UndefinedMetric, match="adjusted_logit"):
        npv_with_interval(**perfect_sensitivity, method="logit")
    auto = npv_with_interval(**perfect_sensitivity)
    assert auto == npv_with_interval(**perfect_sensitivity, method="adjusted_logit")
    assert auto.method == "adjusted_logit" and 0.9 < auto.low < auto.high == auto.value == 1
    # PPV's standard variance vanishes at sensitivity 1: a zero-width interval, so adjusted too
    ppv = ppv_with_interval(**perfect_sensitivity)
    assert ppv.method == "adjusted_logit" and ppv.low < ppv.value < ppv.high
    perfect_specificity = {**BREAST, "tn": 44}
    ppv = ppv_with_interval(**perfect_specificity)
    assert ppv.method == "adjusted_logit" and ppv.value == 1.0  # no false positives at all
    assert ppv.low < ppv.high == 1.0  # widened to the observed value, never past it


def test_nothing_called_on_a_side_leaves_its_predictive_value_undefined() -> None:
    everything_covid = {**BREAST, "tp": 34, "tn": 0}  # sensitivity 1, specificity 0
    with pytest.raises(UndefinedMetric, match="no image would be called non-COVID"):
        npv_with_interval(**everything_covid)
    ppv = ppv_with_interval(**everything_covid)
    assert ppv.value == pytest.approx(BREAST["prevalence"]) and ppv.low < ppv.high


def test_effective_counts_widen_the_interval() -> None:
    """Counts from the patient-aware proportions (deff > 1) give a wider PPV interval."""
    rng = np.random.default_rng(0)
    ids = np.repeat([f"p{i}" for i in range(50)], 3).astype(object)
    called = np.repeat(rng.random(50) < 0.85, 3)
    cleared = np.repeat(rng.random(50) < 0.9, 3)
    se, sp = proportion_with_interval(called, ids), proportion_with_interval(cleared, ids)
    per_image = ppv_with_interval(called.sum(), 150, cleared.sum(), 150, 0.1)
    effective = {
        "tp": se.value * se.effective_n,
        "n_covid": se.effective_n,
        "tn": sp.value * sp.effective_n,
        "n_non_covid": sp.effective_n,
    }
    clustered = ppv_with_interval(**effective, prevalence=0.1)
    assert clustered.value == pytest.approx(per_image.value)
    assert clustered.high - clustered.low > 1.5 * (per_image.high - per_image.low)


def test_likelihood_ratios_match_the_published_example() -> None:
    """epiR::epi.tests on 42 TP, 260 FP, 72 FN, 7778 TN prints LR+ 11.39 (8.71, 14.90)."""
    counts = {"tp": 42, "n_covid": 114, "tn": 7778, "n_non_covid": 8038}
    positive = positive_likelihood_ratio(**counts)
    rounded = (round(positive.value, 2), round(positive.low, 2), round(positive.high, 2))
    assert rounded == (11.39, 8.71, 14.90)
    negative = negative_likelihood_ratio(**counts)
    se_log = math.sqrt(1 / 72 - 1 / 114 + 1 / 7778 - 1 / 8038)  # Simel et al. by hand
    assert negative.value == pytest.approx((72 / 114) / (7778 / 8038))
    assert negative.low == pytest.approx(negative.value * math.exp(-1.959963985 * se_log))
    assert negative.high == pytest.approx(negative.value * math.exp(1.959963985 * se_log))
    assert positive.method == negative.method == "log"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (partial(positive_likelihood_ratio, 10, 20, 30, 30), UndefinedMetric, "LR\\+ is infinite"),
        (partial(positive_likelihood_ratio, 0, 20, 25, 30), UndefinedMetric, "LR\\+ is 0"),
        (partial(negative_likelihood_ratio, 10, 20, 0, 30), UndefinedMetric, "LR− is infinite"),
        (partial(negative_likelihood_ratio, 20, 20, 25, 30), UndefinedMetric, "LR− is 0"),
        (partial(positive_likelihood_ratio, 0, 0, 25, 30), UndefinedMetric, "COVID and non-COVID"),
        (partial(positive_likelihood_ratio, 21, 20, 25, 30), ValueError, "tp=21"),
        (partial(ppv_with_interval, **{**BREAST, "prevalence": 1.0}), ValueError, "prevalence"),
        (partial(ppv_with_interval, **BREAST, method="wilson"), ValueError, "adjusted_logit"),
    ],
)
def test_undefined_and_invalid_inputs_say_why(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_decision_curve_by_hand() -> None:
    """5 images, 2 COVID. At p_t = 0.25 (odds 1/3) the model calls 0.3, 0.6, 0.9 COVID:
    TP 2, FP 1, net benefit 2/5 − 1/5 · 1/3; acting on all: 2/5 − 3/5 · 1/3."""
    label = np.array([0, 1, 0, 1, 0])
    prob = np.array([0.1, 0.6, 0.3, 0.9, 0.2])
    curve = decision_curve(label, prob, [0.25, 0.5, 0.95])
    assert curve.model == pytest.approx([2 / 5 - 1 / 15, 2 / 5, 0.0])
    assert curve.treat_all == pytest.approx([2 / 5 - 1 / 5, 2 / 5 - 3 / 5, 2 / 5 - 3 / 5 * 19])
    assert (curve.treat_none == 0).all() and curve.prevalence == 0.4 and curve.n == 5


def test_decision_curve_limits_and_reference_loop() -> None:
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 200)
    prob = np.clip(0.4 * label + 0.6 * rng.random(200), 0.05, 0.95)
    curve = decision_curve(label, prob)
    assert curve.threshold.tolist() == list(DEFAULT_THRESHOLDS)
    for i, t in enumerate(curve.threshold):
        tp = np.sum((prob >= t) & (label == 1))
        fp = np.sum((prob >= t) & (label == 0))
        assert curve.model[i] == pytest.approx(tp / 200 - fp / 200 * t / (1 - t))
    below, above = curve.threshold <= 0.05, curve.threshold > 0.95
    assert curve.model[below] == pytest.approx(curve.treat_all[below])  # everyone called
    assert (curve.model[above] == 0).all()  # nobody called


def test_decision_curve_bad_input() -> None:
    with pytest.raises(ValueError, match="strictly in \\(0, 1\\)"):
        decision_curve(np.array([0, 1]), np.array([0.2, 0.8]), [0.0, 0.5])
    with pytest.raises(UndefinedMetric, match="at least one image"):
        decision_curve(np.array([], dtype=int), np.array([]))
