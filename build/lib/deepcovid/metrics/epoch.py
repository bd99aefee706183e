"""The scalars logged at every validation/test epoch end, from gathered predictions.

Same definitions as the full evaluation (:mod:`deepcovid.metrics.summary`): COVID is called for
``prob_covid >= threshold``, and an undefined metric (one class only) is NaN, not a crash.
"""

from __future__ import annotations

import math

from deepcovid.metrics.discrimination import auroc, average_precision
from deepcovid.metrics.operating_points import operating_point
from deepcovid.metrics.undefined import or_nan
from deepcovid.results.predictions import Predictions


def epoch_metrics(predictions: Predictions, threshold: float) -> dict[str, float]:
    """AUROC, AP, and sensitivity/specificity at ``threshold`` (NaN where undefined)."""
    label, prob = predictions.label, predictions.prob_covid
    undefined: dict[str, str] = {}
    point = operating_point(label, prob, threshold)
    return {
        "auroc": or_nan(undefined, "auroc", lambda: auroc(label, prob), math.nan),
        "average_precision": or_nan(
            undefined, "average_precision", lambda: average_precision(label, prob), math.nan
        ),
        "sensitivity": math.nan if point.sensitivity is None else point.sensitivity,
        "specificity": math.nan if point.specificity is None else point.specificity,
    }
