"""The scalars logged at every validation/test epoch end, from gathered predictions."""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_stat_scores,
)

from deepcovid.predictions import Predictions


def epoch_metrics(predictions: Predictions, threshold: float) -> dict[str, float]:
    """AUROC, AP, and sensitivity/specificity at ``threshold`` (NaN where undefined)."""
    prob = torch.as_tensor(predictions.prob_covid, dtype=torch.float32)
    label = torch.as_tensor(predictions.label, dtype=torch.long)
    n_pos = int(label.sum())
    n_neg = len(label) - n_pos
    both = n_pos > 0 and n_neg > 0
    tp, fp, tn, fn, _ = binary_stat_scores(prob, label, threshold=threshold).tolist()
    return {
        "auroc": float(binary_auroc(prob, label)) if both else math.nan,
        "average_precision": float(binary_average_precision(prob, label)) if n_pos else math.nan,
        "sensitivity": tp / n_pos if n_pos else math.nan,
        "specificity": tn / n_neg if n_neg else math.nan,
    }
