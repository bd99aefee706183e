"""Lung ablation: every image scored intact, with its lungs removed (lung pixels set to the
occlusion baseline) and with the lungs only (everything else removed). A model that keeps most
of its AUROC with the lungs removed is reading something else."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from deepcovid.metrics.bootstrap import bootstrap_interval
from deepcovid.metrics.discrimination import auroc
from deepcovid.metrics.operating_points import NO_INTERVAL, Interval, counts_at
from deepcovid.metrics.undefined import UndefinedMetric

VARIANTS = {"intact": "prob_covid", "lungs_removed": "prob_covid_lungs_removed",
            "lungs_only": "prob_covid_lungs_only"}  # fmt: skip


def ablate(images: torch.Tensor, masks: torch.Tensor, baseline: float) -> dict[str, torch.Tensor]:
    """The ``(N, C, S, S)`` model inputs with the lungs removed and with the lungs only
    (``masks``: bool ``(N, S, S)``)."""
    lungs = masks[:, None].expand_as(images)
    fill = torch.full_like(images, baseline)
    return {
        "lungs_removed": torch.where(lungs, fill, images),
        "lungs_only": torch.where(lungs, images, fill),
    }


@dataclass(frozen=True)
class AblatedPoint:
    """Sensitivity and specificity at one of the model's thresholds."""

    name: str
    threshold: float
    sensitivity: float | None
    specificity: float | None


@dataclass(frozen=True)
class AblationResult:
    """AUROC (with its interval) and the operating points of one variant of the images."""

    n: int
    auroc: float | None
    auroc_ci: Interval
    points: list[AblatedPoint] = field(default_factory=list)
    undefined: dict[str, str] = field(default_factory=dict)


def rate(hits: int, misses: int) -> float | None:
    return hits / (hits + misses) if hits + misses else None


def summarize_ablation(
    rows: pd.DataFrame,
    thresholds: dict[str, float],
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, AblationResult]:
    """Per variant, on the rows (with a mask) of ``images.csv``: AUROC with a (patient)
    bootstrap interval, and sensitivity/specificity at each named threshold."""
    label = rows["label"].to_numpy(dtype=int)
    ids = rows["patient_id"].to_numpy() if rows["patient_id"].notna().any() else None
    results = {}
    for variant, column in VARIANTS.items():
        prob = rows[column].to_numpy(dtype=np.float64)
        undefined: dict[str, str] = {}
        value, ci = None, NO_INTERVAL
        try:
            value = auroc(label, prob)
            drawn = bootstrap_interval(label, prob, auroc, ids, resamples, confidence, seed)
            ci = (drawn.low, drawn.high)
        except UndefinedMetric as reason:
            undefined["auroc" if value is None else "auroc_ci"] = str(reason)
        points = []
        for name, threshold in thresholds.items():
            c = counts_at(label, prob, threshold)
            points.append(AblatedPoint(name, threshold, rate(c.tp, c.fn), rate(c.tn, c.fp)))
        results[variant] = AblationResult(len(rows), value, ci, points, undefined)
    return results
