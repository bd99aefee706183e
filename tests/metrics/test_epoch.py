"""The per-epoch scalars use the same definitions as the full evaluation."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from deepcovid.metrics.epoch import epoch_metrics
from deepcovid.metrics.predictions import Predictions


def test_matches_sklearn_and_calls_covid_at_or_above_the_threshold() -> None:
    label = np.array([0, 0, 1, 1, 0, 1])
    prob = np.array([0.1, 0.2, 0.2, 0.9, 0.6, 0.4])
    scores = epoch_metrics(Predictions(np.arange(6), label, prob), threshold=0.2)
    assert scores["auroc"] == pytest.approx(roc_auc_score(label, prob))
    assert scores["average_precision"] == pytest.approx(average_precision_score(label, prob))
    assert scores["sensitivity"] == 1.0  # 0.2 >= 0.2 is called COVID
    assert scores["specificity"] == pytest.approx(1 / 3)


def test_one_class_gives_nan() -> None:
    scores = epoch_metrics(Predictions(np.arange(2), np.array([0, 0]), np.array([0.1, 0.9])), 0.5)
    assert math.isnan(scores["auroc"]) and math.isnan(scores["average_precision"])
    assert math.isnan(scores["sensitivity"]) and scores["specificity"] == 0.5
