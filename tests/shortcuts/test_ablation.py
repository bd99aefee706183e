"""Lung ablation: the ablated inputs, and AUROC and operating points of each variant."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deepcovid.shortcuts.ablation import ablate, summarize_ablation


def test_ablated_inputs_keep_and_remove_exactly_the_lungs() -> None:
    images = torch.randn(2, 3, 6, 6)
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[:, 1:4, 2:5] = True
    ablated = ablate(images, masks, baseline=0.5)
    lungs = masks[:, None].expand_as(images)
    assert torch.equal(ablated["lungs_removed"][lungs], torch.full((2 * 3 * 9,), 0.5))
    assert torch.equal(ablated["lungs_removed"][~lungs], images[~lungs])
    assert torch.equal(ablated["lungs_only"][lungs], images[lungs])
    assert (ablated["lungs_only"][~lungs] == 0.5).all()


def test_each_variant_is_scored_on_its_own_column() -> None:
    rng = np.random.default_rng(0)
    n = 80
    label = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "label": label,
            "prob_covid": np.clip(0.5 * label + 0.5 * rng.random(n), 0, 1),
            "prob_covid_lungs_removed": rng.random(n),
            "prob_covid_lungs_only": np.clip(0.3 * label + 0.7 * rng.random(n), 0, 1),
            "patient_id": [f"p{i // 2}" for i in range(n)],
        }
    )
    results = summarize_ablation(frame, {"fixed": 0.5}, 200, 0.95, 0)
    for variant, column in (("intact", "prob_covid"), ("lungs_removed", "prob_covid_lungs_removed"),
                            ("lungs_only", "prob_covid_lungs_only")):  # fmt: skip
        result = results[variant]
        assert result.auroc == pytest.approx(roc_auc_score(label, frame[column]))
        assert result.auroc_ci[0] <= result.auroc <= result.auroc_ci[1] and result.n == n
        (point,) = result.points
        called = frame[column] >= 0.5
        assert point.sensitivity == pytest.approx(called[label == 1].mean())
        assert point.specificity == pytest.approx((~called[label == 0]).mean())
    one_class = summarize_ablation(frame[frame["label"] == 1], {}, 50, 0.95, 0)
    assert (
        one_class["intact"].auroc is None
        and "both classes" in one_class["intact"].undefined["auroc"]
    )
