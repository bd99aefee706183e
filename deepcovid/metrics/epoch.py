"""The scalars logged at every validation epoch end, from gathered predictions.

Same definitions as the full evaluation (:mod:`deepcovid.metrics.summary`): COVID is called for
``prob_covid >= threshold``, and an undefined metric (one class only) is NaN, not a crash.
"""

from __future__ import annotations

import math

import numpy as np

from deepcovid.metrics.discrimination import auroc, average_precision
from deepcovid.metrics.operating_points import counts_at
from deepcovid.metrics.predictions import Predictions
from deepcovid.metrics.undefined import or_reason

ARGMAX_THRESHOLD = 0.5  # the class with the larger softmax output: P(COVID) ≥ 0.5


def ratio(hits: int, misses: int) -> float:
    return hits / (hits + misses) if hits + misses else math.nan


def epoch_metrics(predictions: Predictions, threshold: float) -> dict[str, float]:
    """AUROC, AP, sensitivity/specificity at ``threshold`` and the accuracy of the argmax
    (NaN where undefined)."""
    label, prob = predictions.label, predictions.prob_covid
    undefined: dict[str, str] = {}
    counts = counts_at(label, prob, threshold)
    called = prob >= ARGMAX_THRESHOLD
    return {
        "auroc": or_reason(undefined, "auroc", lambda: auroc(label, prob), math.nan),
        "average_precision": or_reason(
            undefined, "average_precision", lambda: average_precision(label, prob), math.nan
        ),
        "sensitivity": ratio(counts.tp, counts.fn),
        "specificity": ratio(counts.tn, counts.fp),
        "accuracy": float(np.mean(called == label.astype(bool))) if len(label) else math.nan,
    }
