"""One batch measured: P(COVID) intact and with the lungs removed or alone, the features at the
head, and each heatmap's lung share and peak; masks missing for some images."""

import numpy as np
import pandas as pd
import pytest
import torch

from deepcovid.metrics.scores import prob_covid
from deepcovid.shortcuts.masks import AuditMask
from deepcovid.shortcuts.measure import measure_batch, panel_rows
from tests.conftest import tiny_classifier


def left_half(images: torch.Tensor) -> torch.Tensor:
    """A map with 3 units of attribution on the left half and 1 on the right, peak on the left."""
    maps = torch.ones(len(images), *images.shape[2:])
    maps[:, :, : images.shape[3] // 2] = 3.0
    return maps


def test_a_batch_is_measured_per_image_and_per_variant() -> None:
    model = tiny_classifier()
    images = torch.randn(3, 3, 8, 8)
    lungs = torch.zeros(8, 8, dtype=torch.bool)
    lungs[:, :4] = True  # the left half
    masks = [AuditMask(lungs, "given", 0.5), AuditMask(None, "none", problem="no mask"),
             AuditMask(lungs, "given", 0.5)]  # fmt: skip
    explainers = {"left": lambda model, images: left_half(images)}
    columns, features, heatmaps = measure_batch(model, images, masks, explainers, baseline=0.0)
    intact = prob_covid(model.net(images)).detach().numpy()
    assert columns["prob_covid"] == pytest.approx(intact, abs=1e-6)
    removed = images.clone()
    removed[:, :, :, :4] = 0.0
    expected = prob_covid(model.net(removed)).detach().numpy()
    assert columns["prob_covid_lungs_removed"][[0, 2]] == pytest.approx(expected[[0, 2]], abs=1e-6)
    assert np.isnan(columns["prob_covid_lungs_removed"][1])
    assert np.isnan(columns["prob_covid_lungs_only"][1])
    assert columns["lung_share_left"][[0, 2]] == pytest.approx([0.75, 0.75])
    assert np.isnan(columns["lung_share_left"][1])
    peak = columns["peak_in_lungs_left"]
    assert peak[0] is True and peak[2] is True and pd.isna(peak[1])
    assert features.shape == (3, 4) and heatmaps["left"].shape == (3, 8, 8)


def test_the_panel_takes_both_classes_seeded() -> None:
    table = pd.DataFrame({"label": [1] * 10 + [0] * 10})
    chosen = panel_rows(table, 6, seed=1)
    assert chosen == panel_rows(table, 6, seed=1) and len(chosen) == 6
    assert sum(table["label"].iloc[sorted(chosen)]) == 3
