"""Panel choice: a fixed seeded sample, then the most confident TPs, FNs and FPs."""

import numpy as np

from deepcovid.explain.panel import confident_cases, fixed_sample, select_panel
from deepcovid.metrics.predictions import Predictions


def predictions() -> Predictions:
    index = np.array([10, 11, 12, 13, 14, 15, 16, 17])
    label = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    prob = np.array([0.9, 0.95, 0.1, 0.15, 0.8, 0.3, 0.05, 0.8])
    return Predictions(index, label, prob)


def test_confident_cases_in_order():
    cases = confident_cases(predictions(), threshold=0.2, per_category=2)
    assert cases["true_positive"].tolist() == [11, 10]
    assert cases["false_negative"].tolist() == [12, 13]  # lowest P(COVID) first
    assert cases["false_positive"].tolist() == [14, 17]  # tie at 0.8: by index
    assert confident_cases(predictions(), 0.99, 5)["true_positive"].size == 0


def test_fixed_sample_is_seeded_and_balanced():
    first = fixed_sample(predictions(), 4, seed=3)
    assert first.tolist() == fixed_sample(predictions(), 4, seed=3).tolist()
    labels = dict(zip(predictions().index, predictions().label, strict=True))
    assert sorted(labels[i] for i in first) == [0, 0, 1, 1]
    assert len(fixed_sample(predictions(), 20, seed=3)) == 8  # no more than there are


def test_panel_shows_each_image_once():
    panel = select_panel(predictions(), 0.2, per_category=2, fixed=np.array([11, 16]))
    assert panel[:2] == [(11, "sample"), (16, "sample")]
    assert [index for index, _ in panel] == [11, 16, 10, 12, 13, 14, 17]
    assert dict(panel)[12] == "false_negative"
