"""Heatmaps scored against the lungs: the share of positive attribution inside them, against
the share of the image they cover (1.0 = no better than a uniform map), and whether the map's
peak lies inside them (the pointing game)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from deepcovid.metrics.bootstrap import mean_interval
from deepcovid.metrics.intervals import proportion_with_interval
from deepcovid.metrics.operating_points import NO_INTERVAL, Interval
from deepcovid.metrics.undefined import UndefinedMetric


@dataclass(frozen=True)
class LungScore:
    """One map against one mask: positive attribution's share inside the lungs (None for a map
    with no positive attribution), and whether the peak is inside them."""

    share: float | None
    peak_in_lungs: bool | None


def score_map(heatmap: torch.Tensor, mask: torch.Tensor) -> LungScore:
    """:class:`LungScore` of an ``(H, W)`` heatmap and bool mask. The peak is the set of pixels
    at the maximum (occlusion maps have plateaus): inside when most of them are."""
    positive = heatmap.double().clamp(min=0)
    total = float(positive.sum())
    if total <= 0:
        return LungScore(None, None)
    peak = heatmap == heatmap.max()
    inside = float((peak & mask).sum()) / float(peak.sum())
    return LungScore(float(positive[mask].sum()) / total, inside > 0.5)


@dataclass(frozen=True)
class LungAttribution:
    """One method over a group of images: mean lung share with its interval, the mean lungs'
    area share, their ratio, the pointing hit rate with its interval, how many images were
    scored (``n``) and how many maps had no positive attribution (``zero_maps``)."""

    n: int
    zero_maps: int
    mean_share: float | None = None
    share_ci: Interval = NO_INTERVAL
    area_share: float | None = None
    share_over_area: float | None = None
    pointing_hit_rate: float | None = None
    pointing_ci: Interval = NO_INTERVAL
    undefined: dict[str, str] | None = None


def summarize_attribution(
    rows: pd.DataFrame, method: str, resamples: int, confidence: float, seed: int
) -> LungAttribution:
    """:class:`LungAttribution` of the ``images.csv`` rows (with a mask) for ``method``;
    intervals resample patients when the rows have patient ids."""
    share = rows[f"lung_share_{method}"]
    scored = rows[share.notna()]
    zero_maps = int(share.isna().sum())
    if scored.empty:
        return LungAttribution(0, zero_maps, undefined={"mean_share": "no map to score"})
    ids = scored["patient_id"].to_numpy() if scored["patient_id"].notna().any() else None
    values = scored[f"lung_share_{method}"].to_numpy(dtype=np.float64)
    undefined: dict[str, str] = {}
    try:
        drawn = mean_interval(values, ids, resamples, confidence, seed)
        share_ci: Interval = (drawn.low, drawn.high)
    except UndefinedMetric as reason:
        share_ci, undefined["share_ci"] = NO_INTERVAL, str(reason)
    hits = scored[f"peak_in_lungs_{method}"].to_numpy(dtype=bool)
    try:
        pointing = proportion_with_interval(hits, ids, "auto", confidence, resamples, seed)
        pointing_ci: Interval = (pointing.low, pointing.high)
    except UndefinedMetric as reason:
        pointing_ci, undefined["pointing_ci"] = NO_INTERVAL, str(reason)
    area = float(scored["lung_area_share"].mean())
    return LungAttribution(
        n=len(scored),
        zero_maps=zero_maps,
        mean_share=float(values.mean()),
        share_ci=share_ci,
        area_share=area,
        share_over_area=float(values.mean()) / area,
        pointing_hit_rate=float(hits.mean()),
        pointing_ci=pointing_ci,
        undefined=undefined,
    )
