"""Checked NumPy views of (label, P(COVID), patient id) inputs, shared by the statistics.

Every statistic takes label (0/1), prob_covid (in [0, 1]) and optionally patient ids; bad input
raises ``ValueError`` saying what is wrong instead of yielding a silently wrong number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepcovid.metrics.bootstrap import Clusters
from deepcovid.metrics.undefined import class_counts

PatientIds = pd.Series | np.ndarray | None


def checked_scores(label: np.ndarray, prob_covid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label as int64, prob_covid as float64), both 1-D and of one length, labels 0/1 and
    scores in [0, 1]."""
    label, prob = np.asarray(label), np.asarray(prob_covid, dtype=np.float64)
    if label.ndim != 1 or prob.shape != label.shape:
        raise ValueError(f"{prob.size} scores (shape {prob.shape}) for {label.size} labels")
    class_counts(label)  # refuses anything but 0/1
    if not ((prob >= 0.0) & (prob <= 1.0)).all():
        raise ValueError("prob_covid must be probabilities in [0, 1] (NaN or logits given?)")
    return label.astype(np.int64), prob


def checked_ids(patient_id: PatientIds, n: int) -> PatientIds:
    """``patient_id`` as an object array of length ``n`` (None stays None)."""
    if patient_id is None:
        return None
    ids = np.asarray(patient_id, dtype=object)
    if ids.shape != (n,):
        raise ValueError(f"{ids.size} patient ids for {n} images")
    return ids


def has_patient_ids(patient_id: PatientIds) -> bool:
    """Whether at least one image has a patient id."""
    return patient_id is not None and bool(pd.notna(np.asarray(patient_id, object)).any())


def cluster_codes(patient_id: PatientIds, n: int) -> np.ndarray:
    """One integer per image naming its patient (an image without an id is its own patient),
    numbered as :class:`~deepcovid.metrics.bootstrap.Clusters` numbers them."""
    clusters = Clusters(checked_ids(patient_id, n), n)
    codes = np.empty(n, dtype=np.int64)
    codes[clusters.rows] = np.repeat(np.arange(len(clusters)), clusters.sizes)
    return codes
