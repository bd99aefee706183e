"""Confidence intervals of a proportion such as sensitivity, per image or per patient.

Images of one patient are correlated: counting 155 images of 60 patients as 155 independent
trials makes the interval too narrow. :func:`proportion_with_interval` therefore defaults to a
patient-aware interval whenever patient ids exist (see :data:`DEFAULT_PATIENT_METHOD`); the
per-image intervals of :func:`proportion_interval` stay available by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from deepcovid.metrics.bootstrap import Clusters, mean_interval
from deepcovid.metrics.inputs import PatientIds, checked_ids, has_patient_ids
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.utils.choices import choices

# per-image methods → their names in statsmodels' proportion_confint
INTERVAL_METHODS = {"wilson": "wilson", "clopper_pearson": "beta", "normal": "normal"}
PATIENT_INTERVAL_METHODS = ("deff_wilson", "patient_bootstrap")
# deff_wilson, not the bootstrap: deterministic, defined and well-behaved at 0 % and 100 %
# (where every bootstrap resample gives the same proportion, so the percentile interval
# collapses to a point), and it needs no resampling time. The bootstrap makes no parametric
# assumption and stays available by name.
DEFAULT_PATIENT_METHOD = "deff_wilson"
ALL_INTERVAL_METHODS = ("auto", *INTERVAL_METHODS, *PATIENT_INTERVAL_METHODS)
IntervalMethod = choices("IntervalMethod", ALL_INTERVAL_METHODS)  # metrics.interval's type
# Below this many patients, or with one patient holding more than this share of a class's
# images, the design effect is poorly estimated: deff_wilson covered 83–88 % for a nominal
# 95 % with 15 patients, one holding 30 of 58 images. ``auto`` then uses the patient bootstrap.
MIN_PATIENTS = 20
MAX_PATIENT_SHARE = 0.2


@dataclass(frozen=True)
class Estimate:
    """A value with its interval at ``confidence``, and how the interval was made."""

    value: float
    low: float
    high: float
    confidence: float
    method: str


def z_value(confidence: float) -> float:
    """The two-sided standard-normal quantile of ``confidence`` (1.96 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence}: must lie strictly between 0 and 1")
    return float(stats.norm.isf((1.0 - confidence) / 2.0))


def proportion_interval(
    successes: float, total: float, method: str = "wilson", confidence: float = 0.95
) -> tuple[float, float]:
    """Per-image interval of ``successes / total`` (every image an independent trial), from
    statsmodels' ``proportion_confint``.

    ``wilson`` (score interval, the default; ``total`` may be an effective, non-integer
    sample size), ``clopper_pearson`` (exact, conservative) or ``normal`` (Wald, the paper's
    ``p ± z·sqrt(p(1-p)/n)``); Wilson and Wald are clipped to [0, 1].
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"interval method {method!r}; choose one of {list(INTERVAL_METHODS)}")
    if not 0 <= successes <= total:
        raise ValueError(f"successes={successes} must lie between 0 and total={total}")
    if total == 0:
        raise UndefinedMetric("no cases to estimate a proportion from (n = 0)")
    z_value(confidence)  # validates it
    low, high = proportion_confint(
        successes, total, alpha=1.0 - confidence, method=INTERVAL_METHODS[method]
    )
    return float(low), float(high)


@dataclass(frozen=True)
class DesignEffect:
    """Kish's design effect of a clustered proportion.

    ``icc``: the one-way ANOVA intra-patient correlation, clipped to [0, 1] (1 when it cannot
    be estimated because every image has the same outcome; 0 when every patient has one
    image); ``weighted_mean_size``: Σ m² / Σ m over the patients' image counts m;
    ``design_effect`` = 1 + (weighted_mean_size - 1) · icc ≥ 1; ``effective_n`` = n / it.
    """

    icc: float
    weighted_mean_size: float
    design_effect: float
    effective_n: float
    n_patients: int


def anova_icc(hits: np.ndarray, sizes: np.ndarray) -> float | None:
    """One-way ANOVA estimate of the intra-cluster correlation of a 0/1 outcome from per-
    cluster hit counts and sizes (Fleiss; Ridout, Demétrio & Firth 1999, Biometrics 55:137);
    None when between- and within-cluster variation are both zero."""
    n, k = float(sizes.sum()), len(sizes)
    between = (np.sum(hits**2 / sizes) - hits.sum() ** 2 / n) / (k - 1)
    within = np.sum(hits - hits**2 / sizes) / (n - k)
    n0 = (n - np.sum(sizes.astype(float) ** 2) / n) / (k - 1)
    denominator = between + (n0 - 1.0) * within
    if denominator <= 0:
        return None
    return float((between - within) / denominator)


def design_effect(hit: np.ndarray, patient_id: PatientIds) -> DesignEffect:
    """Design effect of the proportion of ``hit`` (one bool per image) when the images cluster
    by ``patient_id`` (an image without an id is its own patient)."""
    hit = np.asarray(hit, dtype=bool)
    if hit.size == 0:
        raise UndefinedMetric("no cases to estimate a proportion from (n = 0)")
    clusters = Clusters(checked_ids(patient_id, hit.size), hit.size)
    if len(clusters) < 2:
        raise UndefinedMetric("a patient-aware interval needs at least two patients")
    sizes = clusters.sizes
    hits = np.add.reduceat(hit[clusters.rows].astype(float), clusters.starts)
    weighted_mean_size = float(np.sum(sizes.astype(float) ** 2) / hit.size)
    if len(clusters) == hit.size:  # one image per patient: nothing to correct
        icc = 0.0
    else:
        estimate = anova_icc(hits, sizes)
        icc = 1.0 if estimate is None else min(1.0, max(0.0, estimate))
    deff = max(1.0, 1.0 + (weighted_mean_size - 1.0) * icc)
    return DesignEffect(icc, weighted_mean_size, deff, hit.size / deff, len(clusters))


@dataclass(frozen=True)
class ProportionEstimate:
    """``successes / total`` with its interval, the ``method`` that gave it and the patient
    structure behind it (``design_effect`` 1 and ``effective_n`` = total for per-image
    methods; ``n_patients`` None without patient ids)."""

    value: float
    low: float
    high: float
    successes: int
    total: int
    method: str
    confidence: float
    n_patients: int | None
    design_effect: float
    effective_n: float


def resolved_method(method: str, patient_id: PatientIds) -> str:
    """``auto`` → :data:`DEFAULT_PATIENT_METHOD` with patient ids, per-image Wilson without."""
    if method not in ALL_INTERVAL_METHODS:
        raise ValueError(f"interval method {method!r}; choose one of {list(ALL_INTERVAL_METHODS)}")
    if method != "auto":
        return method
    return DEFAULT_PATIENT_METHOD if has_patient_ids(patient_id) else "wilson"


def few_patients(label: np.ndarray, patient_id: PatientIds) -> str | None:
    """Why a design-effect interval is unreliable here (fewer than :data:`MIN_PATIENTS`
    patients, or one holding more than :data:`MAX_PATIENT_SHARE` of a class's images), or None
    (also without patient ids)."""
    label = np.asarray(label)
    patient_id = checked_ids(patient_id, label.size)
    if not has_patient_ids(patient_id):
        return None
    n_patients = len(Clusters(patient_id, label.size))
    if n_patients < MIN_PATIENTS:
        return f"{n_patients} patients (fewer than {MIN_PATIENTS})"
    for value, name in ((1, "COVID"), (0, "non-COVID")):
        sizes = Clusters(patient_id[label == value], int(np.sum(label == value))).sizes
        if sizes.size and sizes.max() > MAX_PATIENT_SHARE * sizes.sum():
            return (
                f"one patient holds {sizes.max()} of the {sizes.sum()} {name} images (more "
                f"than {100 * MAX_PATIENT_SHARE:g} %)"
            )
    return None


def proportion_with_interval(
    hit: np.ndarray,
    patient_id: PatientIds = None,
    method: str = "auto",
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> ProportionEstimate:
    """The proportion of ``hit`` (one bool per image of the denominator, e.g. "called COVID"
    for each COVID image = sensitivity) with its interval.

    ``auto`` (the default): ``deff_wilson`` when any image has a patient id, else per-image
    ``wilson``. ``deff_wilson``: Wilson on Kish's effective sample size n / deff, the design
    effect deff = 1 + (Σm²/Σm − 1)·ICC from the patients' image counts m and the ANOVA ICC
    (:func:`design_effect`); with one image per patient it *is* per-image Wilson.
    ``patient_bootstrap``: percentile interval over ``n_resamples`` seeded resamples of
    patients (no parametric assumption, but a point at 0 % and 100 %). Per-image
    ``wilson``, ``clopper_pearson`` and ``normal`` ignore patients.
    """
    hit = np.asarray(hit)
    if hit.ndim != 1 or (hit.size and not np.isin(hit, (0, 1)).all()):
        raise ValueError("hit must be a 1-D array of booleans (or 0/1), one per image")
    hit = hit.astype(bool)
    patient_id = checked_ids(patient_id, hit.size)
    method = resolved_method(method, patient_id)
    successes, total = int(hit.sum()), int(hit.size)
    n_patients = len(Clusters(patient_id, total)) if has_patient_ids(patient_id) else None
    if method in INTERVAL_METHODS:
        low, high = proportion_interval(successes, total, method, confidence)
        deff, effective_n = 1.0, float(total)
    else:
        effect = design_effect(hit, patient_id)
        deff, effective_n = effect.design_effect, effect.effective_n
        if method == "deff_wilson":
            # Wilson on the effective sample size (successes scaled to it alike)
            low, high = proportion_interval(successes / deff, effective_n, "wilson", confidence)
        else:
            drawn = mean_interval(hit, patient_id, n_resamples, confidence, seed)
            low, high = drawn.low, drawn.high
    return ProportionEstimate(
        successes / total,
        low,
        high,
        successes,
        total,
        method,
        confidence,
        n_patients,
        deff,
        effective_n,
    )
