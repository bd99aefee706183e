"""Heatmaps against lung masks: the share, the peak, the summary and its intervals."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from deepcovid.data.transforms import EvalPreset, Preprocessing
from deepcovid.shortcuts.attribution import score_map, summarize_attribution


def test_a_uniform_map_puts_the_lungs_area_share_inside_them() -> None:
    mask = torch.zeros(10, 10, dtype=torch.bool)
    mask[2:8, 1:5] = True  # 24 % of the image
    scored = score_map(torch.ones(10, 10), mask)
    assert scored.share == pytest.approx(0.24) and scored.peak_in_lungs is False  # plateau: 24 %


def test_negative_attribution_does_not_count_and_the_peak_follows_the_maximum() -> None:
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:4] = True
    heatmap = torch.full((8, 8), -1.0)
    heatmap[0, 0] = 3.0  # inside
    heatmap[7, 7] = 1.0  # outside
    scored = score_map(heatmap, mask)
    assert scored.share == pytest.approx(0.75) and scored.peak_in_lungs is True
    assert score_map(torch.zeros(8, 8), mask) == score_map(-heatmap.abs(), mask)
    assert score_map(torch.zeros(8, 8), mask).share is None  # no positive attribution at all


def rows(n: int, seed: int, patients: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    share = rng.uniform(0.2, 0.9, n)
    share[:3] = np.nan  # maps without positive attribution
    return pd.DataFrame(
        {
            "lung_share_occlusion": share,
            "peak_in_lungs_occlusion": rng.random(n) < 0.6,
            "lung_area_share": rng.uniform(0.4, 0.6, n),
            "patient_id": [f"p{i // 2}" for i in range(n)] if patients else [None] * n,
        }
    )


@pytest.mark.parametrize("patients", [True, False])
def test_summary_is_the_mean_of_the_scored_images(patients: bool) -> None:
    table = rows(60, 1, patients)
    a = summarize_attribution(table, "occlusion", 200, 0.95, 0)
    scored = table.dropna(subset=["lung_share_occlusion"])
    assert (a.n, a.zero_maps) == (57, 3)
    assert a.mean_share == pytest.approx(scored["lung_share_occlusion"].mean())
    assert a.area_share == pytest.approx(scored["lung_area_share"].mean())
    assert a.share_over_area == pytest.approx(a.mean_share / a.area_share)
    assert a.pointing_hit_rate == pytest.approx(scored["peak_in_lungs_occlusion"].mean())
    assert a.share_ci[0] < a.mean_share < a.share_ci[1]
    assert a.pointing_ci[0] < a.pointing_hit_rate < a.pointing_ci[1]
    empty = summarize_attribution(table.iloc[:3], "occlusion", 200, 0.95, 0)
    assert empty.n == 0 and empty.mean_share is None and empty.zero_maps == 3


def test_a_mask_follows_its_image_through_the_eval_geometry() -> None:
    """Resize + centre crop of a non-square image: the transformed mask covers exactly the
    transformed bright region, so map, input and mask share pixels."""
    pixels = np.zeros((300, 420), dtype=np.uint8)
    pixels[60:200, 150:330] = 255
    preset = EvalPreset(Preprocessing(image_size=64, crop_ratio=0.875, mean=(0.0,), std=(1.0,)))
    image = preset(Image.fromarray(pixels))[0]
    mask = preset.mask(pixels > 0)
    assert mask.shape == image.shape == (64, 64)
    bright = image > 0.5
    assert (bright == mask).float().mean() > 0.99  # only resampled border pixels may differ
    assert mask.sum() > 0 and (~mask).sum() > 0
