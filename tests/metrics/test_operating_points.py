"""Counts at a threshold against scikit-learn, intervals against scipy, edge cases."""

import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from deepcovid.metrics.operating_points import counts_at, operating_point, unavailable_point
from tests.metrics.test_intervals import reference_interval


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_counts_match_sklearn_with_ties_on_the_threshold(seed: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, 60)
    prob = rng.choice([0.0, 0.2, 0.5, 0.9, 1.0, 0.37], 60)  # many scores equal the threshold
    counts = counts_at(label, prob, threshold)
    expected = sk_confusion_matrix(label, (prob >= threshold).astype(int), labels=[0, 1])
    np.testing.assert_array_equal(counts.matrix(), expected)


@pytest.mark.parametrize("method", ["wilson", "clopper_pearson", "normal"])
def test_point_estimates_and_intervals(method: str) -> None:
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 100)
    prob = np.clip(0.4 * label + 0.6 * rng.random(100), 0, 1)
    point = operating_point(label, prob, 0.5, interval=method, confidence=0.9)
    called = prob >= 0.5
    tp, fn = int((called & (label == 1)).sum()), int((~called & (label == 1)).sum())
    tn, fp = int((~called & (label == 0)).sum()), int((called & (label == 0)).sum())
    c = point.counts
    assert (c.tp, c.fn, c.tn, c.fp) == (tp, fn, tn, fp)
    assert point.sensitivity == tp / (tp + fn) and point.specificity == tn / (tn + fp)
    for (low, high), hits, total in (
        (point.sensitivity_ci, tp, tp + fn),
        (point.specificity_ci, tn, tn + fp),
    ):
        expected = reference_interval(hits, total, method, confidence=0.9)
        assert (low, high) == pytest.approx(expected)
    assert point.undefined == {}


def test_missing_class_gives_none_with_reason() -> None:
    point = operating_point(np.array([1]), np.array([0.7]), 0.5)  # n = 1
    assert point.sensitivity == 1.0 and (point.counts.tp, point.counts.fn) == (1, 0)
    assert point.specificity is None and point.specificity_ci == (None, None)
    assert "non-COVID" in point.undefined["specificity"]
    empty = operating_point(np.array([], dtype=int), np.array([]), 0.5)
    assert empty.sensitivity is None and empty.specificity is None
    assert set(empty.undefined) == {
        "sensitivity", "sensitivity_ci", "specificity", "specificity_ci",
        "ppv", "npv", "lr_positive", "lr_negative",
    }  # fmt: skip


def test_unavailable_point_carries_the_reason_everywhere() -> None:
    point = unavailable_point("youden", "no val split", chosen_on="val")
    assert point.threshold is None and point.counts is None
    assert set(point.undefined.values()) == {"no val split"}
    with pytest.raises(ValueError, match="NaN"):
        counts_at(np.array([0, 1]), np.array([0.2, 0.8]), math.nan)


def test_one_interval_kind_for_both_rates_when_only_one_class_has_patient_ids() -> None:
    label = np.array([1] * 12 + [0] * 10)
    prob = np.linspace(0.05, 0.95, 22)
    ids = np.array([f"p{i // 3}" for i in range(12)] + [None] * 10, dtype=object)
    point = operating_point(label, prob, 0.5, patient_id=ids)
    assert point.interval == "deff_wilson"  # the COVID images' ids make sensitivity's wider
    called = prob >= 0.5
    specificity = reference_interval(int((~called[label == 0]).sum()), 10)
    assert point.specificity_ci == pytest.approx(specificity)  # no ids: per-image Wilson numbers
