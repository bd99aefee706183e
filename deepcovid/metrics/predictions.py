"""Predictions: one record per image (path, label, prob_covid, logit_covid, patient_id, …).

``logit_covid`` is the log-odds log(P(COVID) / P(non-COVID)) from the logits: unlike P(COVID)
it does not saturate at 0 or 1, so calibration fits use it. :class:`PredictionStore` gathers
(index, label, prob_covid, logit_covid) from every DDP rank through
torchmetrics' state sync and drops the duplicates a DistributedSampler pads with, so consumers
see each image exactly once, as in a single-process run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from deepcovid.data.metadata import COLUMNS as METADATA_COLUMNS
from deepcovid.metrics.scores import log_odds_covid, prob_covid

PREDICTION_COLUMNS = [
    "path", "label", "prob_covid", "logit_covid", "patient_id", "source", "finding",
    *METADATA_COLUMNS,
]  # fmt: skip
NUMERIC_COLUMNS = ("label", "prob_covid", "logit_covid", "supine", "age")  # the rest is text


@dataclass
class Predictions:
    """Gathered predictions of one split, sorted by sample index, one entry per image."""

    index: np.ndarray
    label: np.ndarray
    prob_covid: np.ndarray
    logit_covid: np.ndarray | None = None  # None: gathered from probabilities only

    def __len__(self) -> int:
        return len(self.index)


class PredictionStore(Metric):
    """Accumulates per-image predictions; ``compute()`` returns :class:`Predictions`."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("label", default=[], dist_reduce_fx="cat")
        self.add_state("prob_covid", default=[], dist_reduce_fx="cat")
        self.add_state("logit_covid", default=[], dist_reduce_fx="cat")

    def update(self, index: torch.Tensor, label: torch.Tensor, logits: torch.Tensor) -> None:
        """Keep P(COVID) and the log-odds of a batch's logits (N, 2)."""
        logits = logits.detach()
        self.index.append(index.detach().long())
        self.label.append(label.detach().long())
        self.prob_covid.append(prob_covid(logits))
        self.logit_covid.append(log_odds_covid(logits))

    def compute(self) -> Predictions:
        if len(self.index) == 0:  # a list before the DDP sync, a tensor after it
            empty = np.zeros(0)
            return Predictions(empty.astype(int), empty.astype(int), empty, empty)
        index = dim_zero_cat(self.index).cpu().numpy()
        label = dim_zero_cat(self.label).cpu().numpy()
        prob = dim_zero_cat(self.prob_covid).cpu().numpy()
        log_odds = dim_zero_cat(self.logit_covid).cpu().numpy()
        index, first = np.unique(index, return_index=True)  # sorted, padding duplicates gone
        return Predictions(index, label[first], prob[first], log_odds[first])


def predictions_frame(predictions: Predictions, samples: pd.DataFrame) -> pd.DataFrame:
    """Join predictions with their sample rows: ``path,label,prob_covid,logit_covid`` +
    metadata columns that are known for at least one image."""
    rows = samples.loc[predictions.index]
    if not np.array_equal(rows["label"].to_numpy(), predictions.label):
        raise RuntimeError("prediction labels disagree with the sample table: indices are stale")
    frame = pd.DataFrame(
        {
            "path": rows["path"].to_numpy(),
            "label": predictions.label,
            "prob_covid": predictions.prob_covid.astype(np.float64),  # exact; CSVs round-trip
        }
    )
    if predictions.logit_covid is not None:
        frame["logit_covid"] = predictions.logit_covid.astype(np.float64)
    for column in PREDICTION_COLUMNS[4:]:
        if column in rows and rows[column].notna().any():
            frame[column] = rows[column].to_numpy()
    return frame


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A predictions CSV as written (ids and names as text, not numbers)."""
    text = {c: "string" for c in PREDICTION_COLUMNS if c not in NUMERIC_COLUMNS}
    frame = pd.read_csv(path, dtype=text)
    return frame.astype({c: object for c in text if c in frame}).where(frame.notna(), None)
