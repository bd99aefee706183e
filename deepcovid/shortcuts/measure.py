"""The audit's measurements, image by image, in one pass over the data: P(COVID) intact, with
the lungs removed and with the lungs only, each explainer's heatmap scored against the lungs,
and the penultimate features for the source probe. The result is the ``images.csv`` table;
:mod:`deepcovid.shortcuts.result` summarizes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from deepcovid.data.dataset import XrayDataset
from deepcovid.explain.explainers import Explainer
from deepcovid.explain.overlay import to_display
from deepcovid.explain.panel import balanced_sample
from deepcovid.lungs.masks import given_masks
from deepcovid.metrics.scores import prob_covid
from deepcovid.shortcuts.ablation import ablate
from deepcovid.shortcuts.attribution import score_map
from deepcovid.shortcuts.masks import AuditMask, AuditMasks
from deepcovid.shortcuts.probe import PenultimateFeatures


class Audited(Protocol):
    """What the audit needs of a model: ``net`` (logits (N, 2)), its head's and last conv
    block's names (``head_name``, ``target_layer``)."""

    net: nn.Module
    head_name: str
    target_layer: str


@dataclass
class Panel:
    """The images drawn in the overlay grid: display image, lung mask, each method's map."""

    rows: list[int] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    heatmaps: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class Measurements:
    """``images.csv`` as a frame, the features of each image (rows in the same order), and the
    grid's images."""

    images: pd.DataFrame
    features: np.ndarray
    panel: Panel


def panel_rows(table: pd.DataFrame, count: int, seed: int) -> set[int]:
    """Positions of up to ``count`` images, half of each class, seeded."""
    positions = np.arange(len(table))
    return set(balanced_sample(positions, table["label"].to_numpy(), count, seed).tolist())


@torch.inference_mode()
def probabilities(net: nn.Module, images: torch.Tensor) -> np.ndarray:
    return prob_covid(net(images)).cpu().numpy().astype(np.float64)


def measure_batch(
    model: Audited,
    images: torch.Tensor,
    masks: Sequence[AuditMask],
    explainers: Mapping[str, Explainer],
    baseline: float,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, torch.Tensor]]:
    """Columns of one batch, its penultimate features and its heatmaps."""
    n = len(masks)
    with PenultimateFeatures(model.net, model.head_name) as features:
        columns: dict[str, np.ndarray] = {"prob_covid": probabilities(model.net, images)}
    captured = features.captured
    has_mask = [i for i, m in enumerate(masks) if m.mask is not None]
    for variant in ("lungs_removed", "lungs_only"):
        columns[f"prob_covid_{variant}"] = np.full(n, np.nan)
    if has_mask:
        lungs = torch.stack([masks[i].mask for i in has_mask]).to(images.device)
        for variant, ablated in ablate(images[has_mask], lungs, baseline).items():
            columns[f"prob_covid_{variant}"][has_mask] = probabilities(model.net, ablated)
    heatmaps = {
        name: explainer(model, images).float().cpu() for name, explainer in explainers.items()
    }
    for name, maps in heatmaps.items():
        share, peak = np.full(n, np.nan), np.full(n, np.nan, dtype=object)
        for i in has_mask:
            scored = score_map(maps[i], masks[i].mask)
            share[i] = np.nan if scored.share is None else scored.share
            peak[i] = scored.peak_in_lungs
        columns[f"lung_share_{name}"], columns[f"peak_in_lungs_{name}"] = share, peak
    return columns, captured.numpy(), heatmaps


def measure(
    model: Audited,
    dataset: XrayDataset,
    table: pd.DataFrame,
    masks: AuditMasks,
    explainers: Mapping[str, Explainer],
    baseline: float = 0.0,
    batch_size: int = 16,
    panel_size: int = 12,
    seed: int = 0,
) -> Measurements:
    """Every measurement of every image of ``dataset`` (whose rows are ``table``'s)."""
    device = next(model.net.parameters()).device
    chosen = panel_rows(table, panel_size, seed)
    panel = Panel(heatmaps={name: [] for name in explainers})
    parts, feature_parts = [], []
    for start in range(0, len(dataset), batch_size):
        positions = range(start, min(start + batch_size, len(dataset)))
        images = torch.stack([dataset[i]["image"] for i in positions]).to(device)
        rows = table.iloc[list(positions)]
        given = given_masks(rows["lung_mask"])
        found = [masks(path, mask) for path, mask in zip(rows["path"], given, strict=True)]
        columns, batch_features, heatmaps = measure_batch(
            model, images, found, explainers, baseline
        )
        columns |= {
            "lung_area_share": np.array(
                [np.nan if m.area_share is None else m.area_share for m in found]
            ),
            "mask_source": np.array([m.origin for m in found], dtype=object),
            "mask_quality": np.array([m.quality_flag for m in found], dtype=object),
            "mask_problem": np.array([m.problem or "" for m in found], dtype=object),
        }
        parts.append(pd.DataFrame(columns, index=rows.index))
        feature_parts.append(batch_features)
        for offset, position in enumerate(positions):
            if position in chosen and found[offset].mask is not None:
                panel.rows.append(position)
                panel.images.append(to_display(images[offset]))
                panel.masks.append(found[offset].mask.numpy())
                for name, maps in heatmaps.items():
                    panel.heatmaps[name].append(maps[offset].numpy())
    measured = pd.concat(parts)
    keep = [c for c in ("path", "label", "source", "patient_id") if c in table]
    images_table = pd.concat([table[keep], measured], axis=1).reset_index(drop=True)
    return Measurements(images_table, np.concatenate(feature_parts), panel)
