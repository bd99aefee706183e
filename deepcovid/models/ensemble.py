"""Ensembles and test-time augmentation (TTA) as one model: P(COVID) is the **mean of the
members' probabilities** over every checkpoint × every TTA view (:mod:`deepcovid.models.tta`).

:func:`load_combined` returns the first member with its network replaced by
:class:`MeanProbabilityNet` and its record by the ensemble's (:func:`combined_record`), so
every consumer of a model (``predict``, ``evaluate``'s Lightning test, the metrics, occlusion
heatmaps, which then explain the mean probability) works unchanged. Members must agree on their
preprocessing, class names and default threshold (:class:`EnsembleMismatchError` names both
files and the field). The ensemble's operating points are chosen on its own val predictions:
the mean of the members' recorded val P(COVID) per val image they share (``predict``), or the
ensemble, TTA included, run on the val split (``evaluate``); :class:`Combination` says which.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from deepcovid.data.splits import DataRecord
from deepcovid.metrics.summary import MetricSettings, choose_thresholds
from deepcovid.models.checkpoints import load_classifier
from deepcovid.models.classifier import CovidClassifier
from deepcovid.models.exported import ExportedClassifier, load_exported
from deepcovid.models.record import Combination, ModelRecord
from deepcovid.models.tta import DEFAULT_CROP_FRACTION, tta_views
from deepcovid.utils.files import sha256_of

Model = CovidClassifier | ExportedClassifier
BEST_GLOB = "checkpoints/best-*.ckpt"  # a run folder's best checkpoint(s)
NO_SHARED_VAL = "none: the members share no recorded val predictions (different splits, or none)"


class EnsembleMismatchError(ValueError):
    """Checkpoints that cannot be averaged: their input, classes or threshold differ."""


class MeanProbabilityNet(nn.Module):
    """Networks (logits ``(N, 2)``) × input views → the log of the mean of their class
    probabilities, shape ``(N, 2)``: a softmax of it gives the mean P(COVID) and its log-odds
    do not saturate (computed in log space, float32)."""

    def __init__(self, members: Sequence[nn.Module], views: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.views = nn.ModuleList(views)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        log_probs = [
            F.log_softmax(net(view(images)).float(), dim=1)
            for net in self.members
            for view in self.views
        ]
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))


def run_best(folder: Path) -> list[Path]:
    """A run folder's best checkpoint, or each run's in a multirun folder (sorted)."""
    found = sorted(folder.glob(BEST_GLOB)) or sorted(folder.glob(f"*/{BEST_GLOB}"))
    if not found:
        raise FileNotFoundError(
            f"ckpt_path={folder}: a folder without {BEST_GLOB} (a run folder) nor */{BEST_GLOB} "
            "(a multirun folder); pass checkpoint files instead"
        )
    return found


def checkpoint_paths(ckpt_path: str | Path | Sequence[str | Path]) -> list[Path]:
    """The checkpoint files ``ckpt_path`` names: a file, a run or multirun folder (its best
    checkpoints), or a list of these."""
    given = [ckpt_path] if isinstance(ckpt_path, str | Path) else list(ckpt_path)
    paths: list[Path] = []
    for item in map(Path, given):
        paths += run_best(item) if item.is_dir() else [item]
    if not paths:
        raise ValueError("ckpt_path=[]: name at least one checkpoint")
    if len(set(paths)) != len(paths):
        raise ValueError(f"ckpt_path names a checkpoint twice: {[str(p) for p in paths]}")
    return paths


def load_member(path: Path, **overrides: Any) -> Model:
    """A Lightning checkpoint (with ``overrides``), or a ``.safetensors`` export."""
    if path.suffix == ".safetensors":
        return load_exported(path)
    return load_classifier(path, **overrides)


def member_fields(record: ModelRecord) -> dict[str, Any]:
    """The values every member must share."""
    fields = {f"preprocessing.{k}": v for k, v in record.preprocessing.to_dict().items()}
    return fields | {"class_names": tuple(record.class_names), "threshold": record.threshold}


def check_members(paths: Sequence[Path], records: Sequence[ModelRecord]) -> None:
    """Refuse members whose preprocessing, class names or default threshold differ."""
    first = member_fields(records[0])
    for path, record in zip(paths[1:], records[1:], strict=True):
        for name, value in member_fields(record).items():
            if value != first[name]:
                raise EnsembleMismatchError(
                    f"{paths[0]} and {path} differ in {name} ({first[name]!r} vs {value!r}): "
                    "an ensemble averages models that read the same input and call the same "
                    "classes; leave one of them out"
                )


def common_data(
    paths: Sequence[Path], records: Sequence[ModelRecord]
) -> tuple[DataRecord | None, str]:
    """The members' data record when they share the data and its val and test splits, else
    None and why."""
    first = records[0].data
    for path, record in zip(paths[1:], records[1:], strict=True):
        data = record.data
        if first is None or data is None:
            return None, f"{paths[0] if first is None else path} records no data"
        if data.fingerprint != first.fingerprint:
            return None, f"{paths[0]} and {path} were trained on different data"
        for split in ("val", "test"):
            if sorted(data.members.get(split, [])) != sorted(first.members.get(split, [])):
                return None, f"{paths[0]} and {path} have different {split} splits"
    return first, ""


def log_probs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """log P(non-COVID), log P(COVID) of a predictions frame (from its log-odds when kept)."""
    if "logit_covid" in frame:
        logit = frame["logit_covid"].to_numpy(dtype=np.float64)
        return -np.logaddexp(0.0, logit), -np.logaddexp(0.0, -logit)
    prob = frame["prob_covid"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log1p(-prob), np.log(prob)


def mean_val_predictions(records: Sequence[ModelRecord]) -> pd.DataFrame | None:
    """Per val image every member recorded, the mean of their P(COVID) (and its log-odds);
    None when a member recorded none or they share no image."""
    frames = [record.val_predictions for record in records]
    if any(frame is None for frame in frames):
        return None
    if len(frames) == 1:
        return frames[0]
    shared = set.intersection(*(set(frame["path"]) for frame in frames))
    if not shared:
        return None
    frames = [frame[frame["path"].isin(shared)].sort_values("path") for frame in frames]
    base = frames[0].reset_index(drop=True)
    if any((f["label"].to_numpy() != base["label"].to_numpy()).any() for f in frames[1:]):
        raise EnsembleMismatchError("the members' recorded val predictions disagree on labels")
    pairs = [log_probs(frame) for frame in frames]
    count = math.log(len(frames))
    mean_non = np.logaddexp.reduce([non for non, _ in pairs], axis=0) - count
    mean_covid = np.logaddexp.reduce([covid for _, covid in pairs], axis=0) - count
    return base.assign(prob_covid=np.exp(mean_covid), logit_covid=mean_covid - mean_non)


def recorded_settings(record: ModelRecord) -> MetricSettings:
    """Metric settings with the threshold targets ``record``'s operating points were chosen at."""
    targets = {
        rule: point["target"]
        for rule, point in record.operating_points.items()
        if point.get("target") is not None
    }
    return MetricSettings(**targets)


def thresholds_text(n_members: int, val: pd.DataFrame | None, tta: Sequence[str]) -> str:
    """Where a combined model's operating points come from, in words."""
    if val is None:
        return NO_SHARED_VAL
    text = (
        f"the mean of the {n_members} members' recorded val P(COVID) over the {len(val)} val "
        "images they share"
        if n_members > 1
        else f"the checkpoint's recorded val P(COVID) ({len(val)} images)"
    )
    if tta:
        text += f" (recorded without test-time augmentation; scores here use {list(tta)})"
    return text


def combined_record(
    paths: Sequence[Path], records: Sequence[ModelRecord], tta: Sequence[str], views: list[str]
) -> ModelRecord:
    """The record of the members' mean: their shared input and classes, operating points
    chosen on the mean of their val predictions, their common data (if any)."""
    check_members(paths, records)
    first = records[0]
    val = mean_val_predictions(records)
    points = {
        rule: {"threshold": None, "target": point.get("target"), "reason": NO_SHARED_VAL}
        for rule, point in first.operating_points.items()
    }
    if val is not None:
        points = choose_thresholds(val, recorded_settings(first))
    data, split_note = common_data(paths, records)
    backbones = [record.backbone for record in records]
    combination = Combination(
        checkpoints=tuple(str(p) for p in paths),
        sha256=tuple(sha256_of(path) for path in paths),
        tta=tuple(tta),
        views=tuple(views),
        thresholds_from=thresholds_text(len(records), val, tta),
        split_note=split_note,
    )
    return dataclasses.replace(
        first,
        backbone=backbones[0] if len(records) == 1 else f"ensemble({', '.join(backbones)})",
        pretrained_on=tuple(dict.fromkeys(c for r in records for c in r.pretrained_on)),
        weights_file=first.weights_file if len(records) == 1 else None,
        operating_points=points,
        val_predictions=val,
        val_epoch=first.val_epoch if len(records) == 1 else None,
        data=data,
        tracking=first.tracking if len(records) == 1 else {},
        combination=combination,
    )


def load_combined(
    ckpt_path: str | Path | Sequence[str | Path],
    tta: Sequence[str] = (),
    crop_fraction: float = DEFAULT_CROP_FRACTION,
    load: Callable[[Path], Model] = load_member,
) -> Model:
    """One model for ``ckpt_path`` (see :func:`checkpoint_paths`) and ``tta``: a single
    checkpoint without TTA as it is; otherwise the first member scoring the mean P(COVID) of
    all members × views, with the combined record."""
    paths = checkpoint_paths(ckpt_path)
    views = tta_views(tta, crop_fraction)
    members = [load(path) for path in paths]
    if len(members) == 1 and len(views) == 1:
        return members[0]
    host = members[0]
    host.record = combined_record(
        paths, [m.record for m in members], tta, [view.name for view in views]
    )
    host.net = MeanProbabilityNet([member.net for member in members], views).eval()
    return host
