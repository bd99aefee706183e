"""What a trained model carries besides its weights, stored in every checkpoint (key
``deepcovid``) and in the export's JSON, so that a checkpoint copied alone to another machine
still knows how to prepare its input, what its classes and thresholds are, and which data and
splits it was trained and validated on.

Everything is kept as plain values and tensors, which ``torch.load(weights_only=True)`` reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepcovid import CLASS_NAMES, __version__
from deepcovid.data.splits import DataRecord
from deepcovid.data.transforms import Preprocessing
from deepcovid.models.provenance import WeightsFile

CHECKPOINT_KEY = "deepcovid"
MEAN_RULE = "mean of the members' P(COVID)"  # how scores combine, in words (never the logits)
RECORD_VERSION = 1


class MissingRecordError(ValueError):
    """A checkpoint without deepcovid's record (preprocessing, thresholds, data)."""


def frame_to_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """A predictions frame as checkpoint content: P(COVID) and its log-odds (when the frame
    has them: calibration fits use them) as float64 tensors (exact), labels as a long tensor,
    text columns as lists (missing → None)."""
    columns: dict[str, Any] = {
        "label": torch.tensor(frame["label"].to_numpy(), dtype=torch.long),
        "prob_covid": torch.tensor(frame["prob_covid"].to_numpy(dtype=np.float64)),
    }
    if "logit_covid" in frame:
        columns["logit_covid"] = torch.tensor(frame["logit_covid"].to_numpy(dtype=np.float64))
    for name in ("path", "patient_id", "source"):
        if name in frame:
            columns[name] = [None if pd.isna(v) else str(v) for v in frame[name]]
    return columns


def frame_from_columns(columns: dict[str, Any]) -> pd.DataFrame:
    """The inverse of :func:`frame_to_columns`."""
    frame = pd.DataFrame({"path": columns["path"], "label": columns["label"].numpy()})
    frame["prob_covid"] = columns["prob_covid"].numpy()
    if "logit_covid" in columns:  # records written before the log-odds were kept have none
        frame["logit_covid"] = columns["logit_covid"].numpy()
    for name in ("patient_id", "source"):
        if name in columns and any(v is not None for v in columns[name]):
            frame[name] = columns[name]
    return frame


@dataclass(frozen=True)
class Combination:
    """What a combined model averages, recorded in its outputs."""

    checkpoints: tuple[str, ...]
    sha256: tuple[str, ...]
    tta: tuple[str, ...]
    views: tuple[str, ...]
    thresholds_from: str  # the val predictions its operating points are chosen on, in words
    split_note: str = ""  # why the members have no common data record (evaluate refuses then)
    rule: str = MEAN_RULE

    def describe(self) -> str:
        """One sentence: the members, the views and the rule."""
        members = f"{len(self.checkpoints)} checkpoint(s)"
        views = f"{len(self.views)} test-time view(s) ({', '.join(self.views)})"
        return f"P(COVID) is the {self.rule} over {members} × {views}"

    @property
    def weights_sha256(self) -> str:
        """One digest for the combined model: of the members' digests in order and the views."""
        text = "\n".join([*self.sha256, *self.views])
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"description": self.describe()}


@dataclass
class ModelRecord:
    """The model's input, classes, thresholds, provenance, and its data and val predictions.

    ``operating_points`` maps each threshold rule to the cut-off chosen on the val predictions
    of these weights (None with a reason where none could be chosen); ``val_predictions`` are
    those predictions (path relative to the data root, label, prob_covid, patient, source).
    """

    backbone: str
    target_layer: str
    preprocessing: Preprocessing
    threshold: float
    pretrained_on: tuple[str, ...] = ()
    weights_file: WeightsFile | None = None  # the file the starting weights were read from
    class_names: tuple[str, ...] = CLASS_NAMES
    operating_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    val_predictions: pd.DataFrame | None = None
    val_epoch: int | None = None
    data: DataRecord | None = None
    training_precision: str | None = None
    tracking: dict[str, str | None] = field(default_factory=dict)
    deepcovid_version: str = __version__
    # set on an ensemble or test-time-augmented model only (models/ensemble.py); never saved
    combination: Combination | None = None

    def threshold_of(self, rule: str) -> float:
        """The cut-off of ``rule``: ``fixed`` (the model's default) or a rule chosen on val."""
        if rule == "fixed":
            return self.threshold
        if rule not in self.operating_points:
            known = ["fixed", *sorted(self.operating_points)]
            raise ValueError(f"operating_point={rule!r}; this model has {known}")
        point = self.operating_points[rule]
        if point["threshold"] is None:
            raise ValueError(f"no {rule} threshold for this model: {point['reason']}")
        return float(point["threshold"])

    def to_checkpoint(self) -> dict[str, Any]:
        """Plain values and tensors for ``checkpoint["deepcovid"]``."""
        return {
            "version": RECORD_VERSION,
            "backbone": self.backbone,
            "target_layer": self.target_layer,
            "preprocessing": self.preprocessing.to_dict(),
            "threshold": float(self.threshold),
            "pretrained_on": list(self.pretrained_on),
            "weights_file": None if self.weights_file is None else self.weights_file.to_dict(),
            "class_names": list(self.class_names),
            "operating_points": self.operating_points,
            "val_predictions": None
            if self.val_predictions is None
            else frame_to_columns(self.val_predictions),
            "val_epoch": self.val_epoch,
            "data": None if self.data is None else self.data.to_dict(),
            "training_precision": self.training_precision,
            "tracking": dict(self.tracking),
            "deepcovid_version": self.deepcovid_version,
        }

    @classmethod
    def from_checkpoint(cls, stored: dict[str, Any]) -> ModelRecord:
        if stored.get("version") != RECORD_VERSION:
            raise MissingRecordError(
                f"record version {stored.get('version')!r}; this deepcovid reads {RECORD_VERSION}"
            )
        val = stored["val_predictions"]
        return cls(
            backbone=stored["backbone"],
            target_layer=stored["target_layer"],
            preprocessing=Preprocessing.from_dict(stored["preprocessing"]),
            threshold=float(stored["threshold"]),
            pretrained_on=tuple(stored["pretrained_on"]),
            weights_file=WeightsFile.from_dict(stored.get("weights_file")),  # older: none
            class_names=tuple(stored["class_names"]),
            operating_points=stored["operating_points"],
            val_predictions=None if val is None else frame_from_columns(val),
            val_epoch=stored["val_epoch"],
            data=None if stored["data"] is None else DataRecord.from_dict(stored["data"]),
            training_precision=stored["training_precision"],
            tracking=stored["tracking"],
            deepcovid_version=stored["deepcovid_version"],
        )

    def to_metadata(self) -> dict[str, Any]:
        """The record as JSON for an export: without the val predictions and split members."""
        stored = self.to_checkpoint() | {"val_predictions": None}
        if self.data is not None:
            stored["data"] = stored["data"] | {"members": {}}
        return stored
