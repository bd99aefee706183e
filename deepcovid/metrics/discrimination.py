"""Threshold-free metrics of P(COVID) scores (AUROC, AP) and their curves, via torchmetrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_precision_recall_curve,
    binary_roc,
)

from deepcovid.metrics.undefined import require_both_classes


@dataclass(frozen=True)
class Curve:
    """A curve as arrays: ROC (x = 1 - specificity, y = sensitivity) or PR (x = recall,
    y = precision); ``thresholds[i]`` is the cut-off (COVID when P(COVID) ≥ it) of point i."""

    x: np.ndarray
    y: np.ndarray
    thresholds: np.ndarray


def as_tensors(label: np.ndarray, prob_covid: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, labels) as torchmetrics wants them; refuses scores outside [0, 1] or NaN."""
    prob = torch.tensor(np.asarray(prob_covid, dtype=np.float64))
    if prob.numel() != len(label):
        raise ValueError(f"{prob.numel()} scores for {len(label)} labels")
    if prob.numel() and not bool(((prob >= 0) & (prob <= 1)).all()):
        raise ValueError("prob_covid must be probabilities in [0, 1] (NaN or logits given?)")
    return prob, torch.tensor(np.asarray(label), dtype=torch.long)


def auroc(label: np.ndarray, prob_covid: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half)."""
    require_both_classes(label, "AUROC")
    prob, target = as_tensors(label, prob_covid)
    # torchmetrics sums rates in float32: a perfect ranking can come out as 1.0000001
    return min(1.0, max(0.0, float(binary_auroc(prob, target, validate_args=False))))


def average_precision(label: np.ndarray, prob_covid: np.ndarray) -> float:
    """Average precision: the step-wise area under the precision-recall curve. Undefined
    without non-COVID cases too: precision is then 1 at every threshold, whatever the model."""
    require_both_classes(label, "average precision")
    prob, target = as_tensors(label, prob_covid)
    return float(binary_average_precision(prob, target, validate_args=False))


def roc_curve(label: np.ndarray, prob_covid: np.ndarray) -> Curve:
    """ROC curve from (0, 0) at threshold +inf, one point per distinct score."""
    require_both_classes(label, "the ROC curve")
    prob, target = as_tensors(label, prob_covid)
    fpr, tpr, thresholds = binary_roc(prob, target, validate_args=False)
    thresholds = thresholds.double().numpy().copy()
    thresholds[0] = np.inf  # torchmetrics puts 1.0 there, which a score of exactly 1.0 reaches
    return Curve(fpr.double().numpy(), tpr.double().numpy(), thresholds)


def precision_recall_curve(label: np.ndarray, prob_covid: np.ndarray) -> Curve:
    """Precision-recall curve, ending at (recall 0, precision 1) as in scikit-learn."""
    require_both_classes(label, "the precision-recall curve")
    prob, target = as_tensors(label, prob_covid)
    precision, recall, thresholds = binary_precision_recall_curve(prob, target, validate_args=False)
    return Curve(recall.double().numpy(), precision.double().numpy(), thresholds.double().numpy())
