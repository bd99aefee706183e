"""Lung ablation: every image scored intact, with its lungs removed (lung pixels set to the
occlusion baseline) and with the lungs only (everything else removed). A model that keeps most
of its AUROC with the lungs removed is reading something else: how much, with a paired patient
bootstrap of intact − lungs removed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from deepcovid.metrics.bootstrap import MIN_VALID_SHARE, Clusters, bootstrap_interval
from deepcovid.metrics.discrimination import auroc
from deepcovid.metrics.operating_points import NO_INTERVAL, Interval, counts_at
from deepcovid.metrics.paired import midrank_aurocs
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


@dataclass(frozen=True)
class Retained:
    """Intact − lungs-removed AUROC and the share of the intact discrimination above chance
    that survives the removal, ``(removed − 0.5) / (intact − 0.5)``, each with a paired
    bootstrap interval (the same resample of ``unit``s scores both variants) over ``n_valid``
    of ``n_resamples`` resamples; intervals NO_INTERVAL with the reason under ``undefined``."""

    difference: float
    difference_ci: Interval
    share: float
    share_ci: Interval
    n_resamples: int
    n_valid: int
    unit: str
    undefined: dict[str, str] = field(default_factory=dict)


def retained_share(intact: np.ndarray, removed: np.ndarray) -> np.ndarray:
    return (removed - 0.5) / (intact - 0.5)


def retained_discrimination(
    rows: pd.DataFrame, resamples: int, confidence: float, seed: int
) -> Retained:
    """The :class:`Retained` of the rows (with a mask) of ``images.csv``. Resamples with one
    class, or an intact AUROC at or below chance (no discrimination to retain), are dropped and
    counted; below :data:`MIN_VALID_SHARE` of them valid, the intervals are undefined."""
    label = rows["label"].to_numpy(dtype=int)
    scores = rows[[VARIANTS["intact"], VARIANTS["lungs_removed"]]].to_numpy(np.float64).T
    intact, removed = midrank_aurocs(label, scores)
    ids = rows["patient_id"].to_numpy() if rows["patient_id"].notna().any() else None
    clusters = Clusters(ids, len(label))
    rng = np.random.default_rng(seed)
    drawn_aurocs = []
    for _ in range(resamples):
        drawn = clusters.draw(rng)
        if 0 < label[drawn].sum() < drawn.size:
            pair = midrank_aurocs(label[drawn], scores[:, drawn])
            if pair[0] > 0.5:
                drawn_aurocs.append(pair)
    value = Retained(
        float(intact - removed), NO_INTERVAL, float(retained_share(intact, removed)), NO_INTERVAL,
        resamples, len(drawn_aurocs), "patient" if ids is not None else "image",
    )  # fmt: skip
    if len(clusters) < 2 or len(drawn_aurocs) < MIN_VALID_SHARE * resamples:
        reason = (
            f"only {len(drawn_aurocs)} of {resamples} paired resamples hold both classes and an "
            "intact AUROC above chance: too few for an interval"
        )
        return Retained(**{**vars(value), "undefined": {"retained_ci": reason}})
    drawn_intact, drawn_removed = np.asarray(drawn_aurocs).T
    tail = (1.0 - confidence) / 2.0 * 100.0
    levels = [tail, 100.0 - tail]
    difference = np.percentile(drawn_intact - drawn_removed, levels)
    share = np.percentile(retained_share(drawn_intact, drawn_removed), levels)
    return Retained(
        **{**vars(value), "difference_ci": (float(difference[0]), float(difference[1])),
           "share_ci": (float(share[0]), float(share[1]))}
    )  # fmt: skip
