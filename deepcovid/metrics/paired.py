"""Paired comparisons of two models scored on the same images.

AUROC: DeLong's test (fast midrank algorithm, per image) and a paired patient bootstrap (the
same resample of patients for both models); :func:`auroc_test` picks the patient bootstrap
whenever patient ids exist (per-image tests are anti-conservative with repeated images).
Sensitivity/specificity at thresholds: McNemar's exact test on the discordant images, or its
patient-clustered form (Durkalski et al. 2003) with patient ids. Several comparisons: Holm's
step-down adjustment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from deepcovid.metrics.bootstrap import MIN_VALID_SHARE, Clusters
from deepcovid.metrics.inputs import PatientIds, checked_ids, checked_scores, has_patient_ids
from deepcovid.metrics.intervals import z_value
from deepcovid.metrics.undefined import UndefinedMetric, class_counts, require_both_classes


def paired_scores(
    label: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(label, scores of shape (2, n)) after checking both models scored the same images."""
    label, a = checked_scores(label, prob_a)
    _, b = checked_scores(label, prob_b)
    return label, np.vstack([a, b])


def midrank_aurocs(label: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``scores`` (ties count one half) from midranks."""
    m = int(label.sum())
    ranks = stats.rankdata(scores, axis=1)
    return (ranks[:, label == 1].sum(axis=1) - m * (m + 1) / 2) / (m * (label.size - m))


@dataclass(frozen=True)
class AurocComparison:
    """AUROC of models a and b on the same images, their difference a − b with its interval
    at ``confidence`` and the two-sided p-value of "no difference"."""

    auroc_a: float
    auroc_b: float
    difference: float
    se: float
    low: float
    high: float
    p_value: float
    confidence: float
    n_positive: int
    n_negative: int
    method: str


def delong_test(
    label: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray, confidence: float = 0.95
) -> AurocComparison:
    """DeLong, DeLong & Clarke-Pearson (1988) test of AUROC a = AUROC b, in the fast midrank
    form of Sun & Xu (2014, IEEE Signal Process. Lett. 21:1389): the placement values come from
    ranks within each class and overall, their covariances give Var(AUROC a − AUROC b); the
    interval is normal (difference ± z·SE), the p-value 2·Φ(−|difference| / SE). Images are
    taken as independent: with several images per patient see :func:`paired_bootstrap_auroc`.
    """
    label, scores = paired_scores(label, prob_a, prob_b)
    require_both_classes(label, "DeLong's test")
    m, n = class_counts(label)
    if min(m, n) < 2:
        raise UndefinedMetric(
            f"DeLong's variance needs at least 2 images of each class; got {m} COVID and "
            f"{n} non-COVID"
        )
    positive, negative = scores[:, label == 1], scores[:, label == 0]
    within_positive = stats.rankdata(positive, axis=1)
    within_negative = stats.rankdata(negative, axis=1)
    overall = stats.rankdata(np.hstack([positive, negative]), axis=1)
    v10 = (overall[:, :m] - within_positive) / n  # share of negatives each positive beats
    v01 = 1.0 - (overall[:, m:] - within_negative) / m  # share of positives beating each negative
    aurocs = v10.mean(axis=1)
    covariance = np.cov(v10) / m + np.cov(v01) / n
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ covariance @ contrast)
    difference = float(aurocs[0] - aurocs[1])
    # placements are multiples of 1/(2·n): a real variance is far above this rounding guard
    if variance <= 1e-15:  # identical or both degenerate (e.g. perfect) rankings
        raise UndefinedMetric(
            "the AUROC difference has zero DeLong variance (the two models rank the images "
            "identically, or both separate them perfectly): no test is possible"
        )
    se = variance**0.5
    half = z_value(confidence) * se
    p_value = float(2.0 * stats.norm.sf(abs(difference) / se))
    return AurocComparison(
        float(aurocs[0]),
        float(aurocs[1]),
        difference,
        se,
        difference - half,
        difference + half,
        p_value,
        confidence,
        m,
        n,
        "delong",
    )


@dataclass(frozen=True)
class BootstrapAurocComparison:
    """AUROC a, b and a − b with its percentile interval and bootstrap p-value over
    ``n_valid`` of ``n_resamples`` paired resamples of ``unit`` ("patient" or "image")."""

    auroc_a: float
    auroc_b: float
    difference: float
    low: float
    high: float
    p_value: float
    confidence: float
    n_resamples: int
    n_valid: int
    unit: str


def paired_bootstrap_auroc(
    label: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    patient_id: PatientIds = None,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapAurocComparison:
    """Paired patient bootstrap of AUROC a − AUROC b: each seeded resample draws patients with
    replacement (all their images; an image without an id is its own patient) and scores
    both models on it. Interval: percentiles of the resampled differences d*. p-value:
    ``min(1, 2 · min(1 + #{d* ≤ 0}, 1 + #{d* ≥ 0}) / (n_valid + 1))``, the two-sided
    percentile-interval inversion (the smallest 1 − level whose interval excludes 0), with
    the +1 keeping it above 0 for a finite number of resamples. Resamples with one class only
    are dropped and counted, as in :func:`~deepcovid.metrics.bootstrap.bootstrap_interval`.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}: need at least one bootstrap resample")
    z_value(confidence)  # validates it
    label, scores = paired_scores(label, prob_a, prob_b)
    require_both_classes(label, "the AUROC difference")
    patient_id = checked_ids(patient_id, label.size)
    clusters = Clusters(patient_id, label.size)
    if len(clusters) < 2:
        raise UndefinedMetric("a bootstrap interval needs at least two patients")
    aurocs = midrank_aurocs(label, scores)
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(n_resamples):
        rows = clusters.draw(rng)
        drawn = label[rows]
        if 0 < drawn.sum() < drawn.size:
            resampled = midrank_aurocs(drawn, scores[:, rows])
            differences.append(resampled[0] - resampled[1])
    n_valid = len(differences)
    if n_valid < MIN_VALID_SHARE * n_resamples:
        raise UndefinedMetric(
            f"only {n_valid} of {n_resamples} bootstrap resamples contain both classes; "
            "too few cases of one class for an interval"
        )
    differences = np.asarray(differences)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(differences, [tail, 100.0 - tail])
    smaller_side = min(np.sum(differences <= 0), np.sum(differences >= 0))
    p_value = min(1.0, 2.0 * (1 + int(smaller_side)) / (n_valid + 1))
    unit = "patient" if has_patient_ids(patient_id) else "image"
    return BootstrapAurocComparison(
        float(aurocs[0]),
        float(aurocs[1]),
        float(aurocs[0] - aurocs[1]),
        float(low),
        float(high),
        p_value,
        confidence,
        n_resamples,
        n_valid,
        unit,
    )


@dataclass(frozen=True)
class PairedAurocTest:
    """The AUROC difference a − b, its interval and p-value from ``method``: "patient
    bootstrap" (patient-clustered) or "DeLong (per image)"."""

    auroc_a: float
    auroc_b: float
    difference: float
    low: float
    high: float
    p_value: float
    method: str


def auroc_test(
    label: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    patient_id: PatientIds = None,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedAurocTest:
    """The headline test of AUROC a = AUROC b: the paired patient bootstrap when any image has
    a patient id (DeLong's per-image variance ignores that a patient's images move together,
    and rejects far more often than α when they do), else DeLong's test. Raises
    :class:`UndefinedMetric` when the chosen test is undefined (no silent fallback)."""
    if has_patient_ids(patient_id):
        boot = paired_bootstrap_auroc(
            label, prob_a, prob_b, patient_id,
            n_resamples=n_resamples, confidence=confidence, seed=seed,
        )  # fmt: skip
        return PairedAurocTest(boot.auroc_a, boot.auroc_b, boot.difference, boot.low,
                               boot.high, boot.p_value, "patient bootstrap")  # fmt: skip
    d = delong_test(label, prob_a, prob_b, confidence)
    return PairedAurocTest(
        d.auroc_a, d.auroc_b, d.difference, d.low, d.high, d.p_value, "DeLong (per image)"
    )


@dataclass(frozen=True)
class McNemarResult:
    """Paired proportions ``rate_a`` and ``rate_b`` on the same ``n`` images, their difference
    a − b, the discordant counts (``only_a``: a right and b wrong) and the two-sided p-value of
    McNemar's test over ``unit``s: "image" (exact) or "patient" (clustered)."""

    rate_a: float
    rate_b: float
    difference: float
    only_a: int
    only_b: int
    n: int
    p_value: float
    unit: str = "image"


def mcnemar_exact(hit_a: np.ndarray, hit_b: np.ndarray) -> McNemarResult:
    """McNemar's exact test (statsmodels): under "no difference" the ``only_a`` of the
    ``only_a + only_b`` discordant images are Binomial(·, 1/2); the p-value is the two-sided
    binomial test of it (1 when no image is discordant)."""
    hit_a, hit_b = np.asarray(hit_a, dtype=bool), np.asarray(hit_b, dtype=bool)
    if hit_a.ndim != 1 or hit_a.shape != hit_b.shape:
        raise ValueError(f"paired outcomes differ in shape: {hit_a.shape} and {hit_b.shape}")
    if hit_a.size == 0:
        raise UndefinedMetric("no images to compare (n = 0)")
    only_a, only_b = int(np.sum(hit_a & ~hit_b)), int(np.sum(~hit_a & hit_b))
    table = [[0, only_a], [only_b, 0]]  # the concordant cells do not enter the test
    p_value = mcnemar(table, exact=True).pvalue
    rate_a, rate_b = float(hit_a.mean()), float(hit_b.mean())
    return McNemarResult(
        rate_a, rate_b, rate_a - rate_b, only_a, only_b, int(hit_a.size), float(p_value)
    )


def sign_flip_p_value(differences: np.ndarray) -> float:
    """P(|Σ s_k·d_k| ≥ |Σ d_k|) over independent, equally likely signs s_k = ±1: the exact
    randomisation distribution of a sum of integer differences, by convolution."""
    d = np.abs(differences[differences != 0]).astype(np.int64)
    total = int(d.sum())
    if total == 0:
        return 1.0
    probability = np.zeros(2 * total + 1)
    probability[total] = 1.0  # index total + s: the sum s so far
    for step in d:
        probability = 0.5 * (np.roll(probability, step) + np.roll(probability, -step))
    observed = abs(int(differences.sum()))
    sums = np.abs(np.arange(-total, total + 1))
    return float(min(1.0, probability[sums >= observed].sum()))


def clustered_mcnemar(
    hit_a: np.ndarray, hit_b: np.ndarray, patient_id: PatientIds
) -> McNemarResult:
    """McNemar's test with images clustered by patient (Durkalski, Palesch, Lipsitz & Rust
    2003, Stat Med 22:2417): per patient k, d_k = (images only a got right) − (only b);
    Durkalski's statistic (Σ d_k)² / Σ d_k² is referred to its exact sign-flip distribution
    (under "no difference" each patient's d_k is as likely −d_k), not to χ²(1), so the test
    stays exact with few discordant patients. One image per patient: McNemar's exact test."""
    hit_a, hit_b = np.asarray(hit_a, dtype=bool), np.asarray(hit_b, dtype=bool)
    per_image = mcnemar_exact(hit_a, hit_b)
    clusters = Clusters(checked_ids(patient_id, hit_a.size), hit_a.size)
    difference = (hit_a & ~hit_b).astype(np.int64) - (~hit_a & hit_b).astype(np.int64)
    per_patient = np.add.reduceat(difference[clusters.rows], clusters.starts)
    return McNemarResult(
        per_image.rate_a, per_image.rate_b, per_image.difference, per_image.only_a,
        per_image.only_b, per_image.n, sign_flip_p_value(per_patient), "patient",
    )  # fmt: skip


@dataclass(frozen=True)
class PairedOperatingPoints:
    """Sensitivity (on the COVID images) and specificity (on the non-COVID ones) of models a
    and b at their thresholds, each compared by McNemar's exact test."""

    threshold_a: float
    threshold_b: float
    sensitivity: McNemarResult
    specificity: McNemarResult


def compare_operating_points(
    label: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    threshold_a: float,
    threshold_b: float | None = None,
    patient_id: PatientIds = None,
) -> PairedOperatingPoints:
    """McNemar comparisons at a shared threshold (``threshold_b`` None) or at each model's own
    (e.g. each chosen on validation); COVID is called for ``prob >= threshold``. With patient
    ids: :func:`clustered_mcnemar`, else :func:`mcnemar_exact`."""
    threshold_b = threshold_a if threshold_b is None else threshold_b
    if np.isnan(threshold_a) or np.isnan(threshold_b):
        raise ValueError("threshold is NaN")
    label, scores = paired_scores(label, prob_a, prob_b)
    require_both_classes(label, "paired sensitivity and specificity")
    called_a, called_b = scores[0] >= threshold_a, scores[1] >= threshold_b
    covid = label == 1
    ids = checked_ids(patient_id, label.size)
    if has_patient_ids(ids):
        return PairedOperatingPoints(
            float(threshold_a),
            float(threshold_b),
            clustered_mcnemar(called_a[covid], called_b[covid], ids[covid]),
            clustered_mcnemar(~called_a[~covid], ~called_b[~covid], ids[~covid]),
        )
    return PairedOperatingPoints(
        float(threshold_a),
        float(threshold_b),
        mcnemar_exact(called_a[covid], called_b[covid]),
        mcnemar_exact(~called_a[~covid], ~called_b[~covid]),
    )


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values (statsmodels' ``multipletests``), in the input
    order: the i-th smallest of m becomes max over j ≤ i of min(1, (m − j + 1) · p_(j)).
    Reject where adjusted ≤ α to keep the family-wise error rate at α."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not ((p >= 0) & (p <= 1)).all():
        raise ValueError("p-values must be a flat sequence of numbers in [0, 1] (no NaN)")
    if p.size == 0:
        return p
    return multipletests(p, method="holm")[1]
