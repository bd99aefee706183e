"""AUROC, AP and their curves (torchmetrics) against scikit-learn, on random and edge inputs."""

import numpy as np
import pytest
from sklearn import metrics as sk

from deepcovid.metrics.discrimination import (
    auroc,
    average_precision,
    precision_recall_curve,
    roc_curve,
)
from deepcovid.metrics.undefined import UndefinedMetric


def random_scores(seed: int, n: int = 80, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    prob = np.clip(0.3 * label + 0.7 * rng.random(n), 0, 1)
    return label, np.round(prob, decimals) if decimals is not None else prob


CASES = {
    "random": random_scores(0),
    "ties": random_scores(1, decimals=1),  # many tied scores, across classes
    "all tied": (np.array([0, 1, 0, 1, 1]), np.full(5, 0.5)),
    "perfect separation": (np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.8, 0.9])),
    "perfectly wrong": (np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9])),
    "scores 0 and 1": (np.array([0, 1, 1, 0, 1]), np.array([0.0, 1.0, 1.0, 0.0, 0.5])),
    "two images": (np.array([0, 1]), np.array([0.4, 0.6])),
}


@pytest.mark.parametrize("case", CASES)
def test_auroc_and_ap_match_sklearn(case: str) -> None:
    label, prob = CASES[case]
    assert auroc(label, prob) == pytest.approx(sk.roc_auc_score(label, prob), abs=1e-6)
    expected_ap = sk.average_precision_score(label, prob)
    assert average_precision(label, prob) == pytest.approx(expected_ap, abs=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_curves_match_sklearn(case: str) -> None:
    label, prob = CASES[case]
    fpr, tpr, thresholds = sk.roc_curve(label, prob, drop_intermediate=False)
    roc = roc_curve(label, prob)
    np.testing.assert_allclose(roc.x, fpr, atol=1e-6)
    np.testing.assert_allclose(roc.y, tpr, atol=1e-6)
    np.testing.assert_allclose(roc.thresholds, thresholds)  # +inf first, as in sklearn
    precision, recall, pr_thresholds = sk.precision_recall_curve(label, prob)
    pr = precision_recall_curve(label, prob)
    np.testing.assert_allclose(pr.x, recall, atol=1e-6)
    np.testing.assert_allclose(pr.y, precision, atol=1e-6)
    np.testing.assert_allclose(pr.thresholds, pr_thresholds)


def test_a_roc_threshold_reproduces_its_point_even_at_score_one() -> None:
    label, prob = CASES["scores 0 and 1"]
    roc = roc_curve(label, prob)
    for threshold, fpr, tpr in zip(roc.thresholds, roc.x, roc.y, strict=True):
        called = prob >= threshold
        assert called[label == 1].mean() == pytest.approx(tpr)
        assert called[label == 0].mean() == pytest.approx(fpr)


@pytest.mark.parametrize(
    ("label", "prob"),
    [
        (np.array([1]), np.array([0.7])),  # n = 1
        (np.array([0, 0, 0]), np.array([0.1, 0.5, 0.9])),  # no COVID
        (np.array([1, 1]), np.array([0.1, 0.9])),  # no non-COVID
        (np.array([], dtype=int), np.array([])),  # nothing
    ],
)
def test_one_class_is_undefined_with_a_reason(label: np.ndarray, prob: np.ndarray) -> None:
    with pytest.raises(UndefinedMetric, match="both classes"):
        auroc(label, prob)
    with pytest.raises(UndefinedMetric, match="both classes"):
        roc_curve(label, prob)
    # only COVID cases: precision is 1 at every threshold, whatever the model, so no AP
    with pytest.raises(UndefinedMetric, match="both classes"):
        average_precision(label, prob)


def test_refuses_scores_that_are_not_probabilities() -> None:
    label = np.array([0, 1, 0, 1])
    for prob in (np.array([0.1, 1.5, 0.2, 0.3]), np.array([0.1, np.nan, 0.2, 0.3])):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            auroc(label, prob)
    with pytest.raises(ValueError, match="labels"):
        auroc(np.array([0, 2, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="3 scores for 4 labels"):
        auroc(label, np.array([0.1, 0.2, 0.3]))
