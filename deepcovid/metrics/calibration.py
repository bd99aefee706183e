"""Calibration of P(COVID): ECE and reliability bins, Brier score, calibration intercept and
slope, and recalibration maps (Platt, temperature) fitted on one split to apply on another.

ECE and the bins use equal-width bins [0, 1/B), …, [(B-1)/B, 1] with exact edges k/B (a score
of 0.3 falls in [0.3, 0.4), which a float linspace edge of 0.30000000000000004 would miss).

The logistic fits (calibration intercept and slope, Platt, temperature) take the model's stored
log-odds where they exist: P(COVID) saturates at exactly 0 or 1 in float32 once the logit gap
passes ~17, and a fit on logit(clip(p)) then depends on the clip constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import statsmodels.api as sm
from scipy.special import expit

from deepcovid.metrics.bootstrap import bootstrap_interval
from deepcovid.metrics.inputs import PatientIds, checked_scores, cluster_codes, has_patient_ids
from deepcovid.metrics.intervals import Estimate, z_value
from deepcovid.metrics.undefined import UndefinedMetric, require_both_classes


@dataclass(frozen=True)
class ReliabilityBins:
    """Per bin: edges, mean P(COVID), observed COVID fraction and image count (empty bins:
    NaN mean and fraction, count 0)."""

    lower: np.ndarray
    upper: np.ndarray
    mean_prob_covid: np.ndarray
    fraction_covid: np.ndarray
    count: np.ndarray


def check_bins(n_bins: int) -> None:
    if n_bins < 1:
        raise ValueError(f"calibration_bins={n_bins}: need at least one bin")


def expected_calibration_error(
    label: np.ndarray, prob_covid: np.ndarray, n_bins: int = 10
) -> float:
    """Σ_bins (n_bin / n) · |fraction COVID − mean P(COVID)| over :func:`reliability_bins`."""
    if len(label) == 0:
        raise UndefinedMetric("calibration error needs at least one image")
    bins = reliability_bins(*checked_scores(label, prob_covid), n_bins)
    filled = bins.count > 0
    gaps = np.abs(bins.fraction_covid[filled] - bins.mean_prob_covid[filled])
    return float(np.sum(bins.count[filled] * gaps) / bins.count.sum())


def reliability_bins(
    label: np.ndarray, prob_covid: np.ndarray, n_bins: int = 10
) -> ReliabilityBins:
    """The reliability diagram's data: mean score against observed COVID fraction per bin."""
    check_bins(n_bins)
    prob = np.asarray(prob_covid, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    edges = np.arange(n_bins + 1) / n_bins  # k / B correctly rounded: 3 / 10 == 0.3
    which = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(which, weights=prob, minlength=n_bins) / count
        fraction = np.bincount(which, weights=label, minlength=n_bins) / count
    return ReliabilityBins(edges[:-1], edges[1:], mean_prob, fraction, count)


# Probabilities are clipped to [ε, 1 − ε] before the logit, so a saturated softmax score of
# exactly 0 or 1 maps to ±13.8 instead of ±inf (1e-6 keeps float32-rounded scores distinct).
PROB_EPSILON = 1e-6
# Fewer images than this always give a separated or degenerate logistic fit.
MIN_FIT_IMAGES = 3


def logit(prob_covid: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)) of the scores clipped to [:data:`PROB_EPSILON`, 1 − it]."""
    prob = np.clip(np.asarray(prob_covid, dtype=np.float64), PROB_EPSILON, 1.0 - PROB_EPSILON)
    return np.log(prob) - np.log1p(-prob)


def saturated_count(prob_covid: np.ndarray) -> int:
    """How many scores the clip of :func:`logit` changes (saturated at or near 0 or 1)."""
    prob = np.asarray(prob_covid, dtype=np.float64)
    return int(np.sum((prob < PROB_EPSILON) | (prob > 1.0 - PROB_EPSILON)))


def log_odds_of(prob_covid: np.ndarray, log_odds: np.ndarray | None) -> np.ndarray:
    """The stored log-odds (checked finite, one per score), else :func:`logit` of the scores."""
    if log_odds is None:
        return logit(prob_covid)
    z = np.asarray(log_odds, dtype=np.float64)
    if z.shape != np.shape(prob_covid) or not np.isfinite(z).all():
        raise ValueError(
            f"logit_covid: {z.size} log-odds for {np.size(prob_covid)} scores, or some not "
            "finite; rewrite the predictions (python -m deepcovid.evaluate) or drop the column"
        )
    return z


def brier_score(label: np.ndarray, prob_covid: np.ndarray) -> float:
    """Mean squared difference between P(COVID) and the 0/1 label (0 is perfect)."""
    label, prob = checked_scores(label, prob_covid)
    if label.size == 0:
        raise UndefinedMetric("the Brier score needs at least one image")
    return float(np.mean((prob - label) ** 2))


def brier_with_interval(
    label: np.ndarray,
    prob_covid: np.ndarray,
    patient_id: PatientIds = None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Brier score with a percentile bootstrap interval over patients (over images when no
    image has a patient id), via :func:`~deepcovid.metrics.bootstrap.bootstrap_interval`."""
    value = brier_score(label, prob_covid)
    drawn = bootstrap_interval(
        label, prob_covid, brier_score, patient_id, n_resamples, confidence, seed
    )
    return Estimate(value, drawn.low, drawn.high, confidence, f"{drawn.unit}_bootstrap")


def fit_inputs(
    label: np.ndarray, prob_covid: np.ndarray, what: str, log_odds: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(label, log-odds) for a logistic fit on P(COVID): the stored ``log_odds`` where given,
    else the clipped logit of the scores; refuses fits that cannot exist."""
    label, prob = checked_scores(label, prob_covid)
    if label.size < MIN_FIT_IMAGES:
        raise UndefinedMetric(f"{what} needs at least {MIN_FIT_IMAGES} images; got {label.size}")
    require_both_classes(label, what)
    z = log_odds_of(prob, log_odds)
    if np.ptp(z) == 0:
        raise UndefinedMetric(f"{what} needs at least two distinct scores; all are {prob[0]:g}")
    return label, z


def require_overlap(label: np.ndarray, z: np.ndarray, what: str) -> None:
    """Raise unless the classes overlap in score: with a cut-off separating them (ties at the
    cut-off allowed), the logistic slope's maximum-likelihood estimate is infinite."""
    positive, negative = z[label == 1], z[label == 0]
    if positive.min() >= negative.max() or positive.max() <= negative.min():
        raise UndefinedMetric(
            f"{what} does not exist: a cut-off separates the classes perfectly, so the "
            "logistic fit's slope is infinite"
        )


def wald(result: Any, confidence: float, method: str) -> Estimate:
    """The single coefficient of a statsmodels fit with its Wald interval."""
    value, se = float(result.params[0]), float(result.bse[0])
    half = z_value(confidence) * se
    return Estimate(value, value - half, value + half, confidence, method)


def glm_fit(label: np.ndarray, design: np.ndarray, offset: np.ndarray | None, groups) -> Any:
    """Logistic GLM (statsmodels), cluster-robust by patient when ``groups`` is given."""
    model = sm.GLM(label, design, family=sm.families.Binomial(), offset=offset)
    if groups is None:
        result = model.fit()
    else:
        result = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    if not result.converged:
        raise UndefinedMetric("the logistic recalibration fit did not converge")
    return result


def patient_groups(patient_id: PatientIds, n: int) -> tuple[np.ndarray | None, str]:
    """Cluster codes for patient-robust standard errors (None without ids), and the name of
    the covariance that results."""
    if not has_patient_ids(patient_id):
        return None, "wald"
    codes = cluster_codes(patient_id, n)
    if codes.max() < 1:
        raise UndefinedMetric("a patient-robust interval needs at least two patients")
    return codes, "wald_patient_robust"


def calibration_fit(
    slope: bool,
    label: np.ndarray,
    prob_covid: np.ndarray,
    patient_id: PatientIds = None,
    confidence: float = 0.95,
    log_odds: np.ndarray | None = None,
) -> Estimate:
    """Logistic recalibration logit P(COVID | p) = a + β·logit(p), Wald interval, patient-robust
    (sandwich standard errors clustered by patient) when patient ids exist; logit(p) is the
    stored ``log_odds`` where given.

    ``slope``: β, fitted with its own intercept; 1 is ideal, β < 1: the scores are too extreme
    (over-confident). Otherwise calibration-in-the-large: α with the slope fixed at 1 (the label
    regressed on an intercept with logit(p) as offset); 0 is ideal, α > 0: the scores are too
    low on average."""
    what = "the calibration slope" if slope else "the calibration intercept"
    label, z = fit_inputs(label, prob_covid, what, log_odds)
    if slope:
        require_overlap(label, z, what)
        design, offset = np.column_stack([z, np.ones_like(z)]), None
    else:
        design, offset = np.ones((label.size, 1)), z
    groups, method = patient_groups(patient_id, label.size)
    return wald(glm_fit(label, design, offset, groups), confidence, method)


calibration_intercept = partial(calibration_fit, False)
calibration_slope = partial(calibration_fit, True)


@dataclass(frozen=True)
class PlattScaling:
    """Platt scaling: P' = σ(intercept + slope · logit(p)), fitted by maximum likelihood
    (plain logistic regression of the label on logit(p), without Platt's smoothed targets).
    Fit on validation predictions, apply to test ones."""

    intercept: float
    slope: float

    @classmethod
    def fit(
        cls, label: np.ndarray, prob_covid: np.ndarray, log_odds: np.ndarray | None = None
    ) -> PlattScaling:
        label, z = fit_inputs(label, prob_covid, "Platt scaling", log_odds)
        require_overlap(label, z, "Platt scaling")
        result = glm_fit(label, np.column_stack([np.ones_like(z), z]), None, None)
        return cls(float(result.params[0]), float(result.params[1]))

    def log_odds(self, z: np.ndarray) -> np.ndarray:
        """The recalibrated log-odds of log-odds ``z``."""
        return self.intercept + self.slope * z

    def apply(self, prob_covid: np.ndarray, log_odds: np.ndarray | None = None) -> np.ndarray:
        return expit(self.log_odds(log_odds_of(prob_covid, log_odds)))


@dataclass(frozen=True)
class TemperatureScaling:
    """Temperature scaling: P' = σ(logit(p) / T) with the single T > 0 minimising the negative
    log-likelihood, i.e. the logistic regression of the label on logit(p) without intercept
    (coefficient 1/T). Fit on validation predictions, apply to test ones."""

    temperature: float

    @classmethod
    def fit(
        cls, label: np.ndarray, prob_covid: np.ndarray, log_odds: np.ndarray | None = None
    ) -> TemperatureScaling:
        label, z = fit_inputs(label, prob_covid, "temperature scaling", log_odds)
        positive, negative = z[label == 1], z[label == 0]
        if (positive.min() >= 0 and negative.max() <= 0) or (
            positive.max() <= 0 and negative.min() >= 0
        ):
            raise UndefinedMetric(
                "temperature scaling does not exist: P(COVID) ≥ 0.5 on one class and ≤ 0.5 on "
                "the other, so the likelihood keeps growing as T → 0"
            )
        inverse = float(glm_fit(label, z[:, None], None, None).params[0])
        if inverse <= 0:
            raise UndefinedMetric(
                "temperature scaling needs scores that rank COVID above non-COVID; the best "
                f"fit has 1/T = {inverse:.3g} ≤ 0"
            )
        return cls(1.0 / inverse)

    def log_odds(self, z: np.ndarray) -> np.ndarray:
        """The recalibrated log-odds of log-odds ``z``."""
        return z / self.temperature

    def apply(self, prob_covid: np.ndarray, log_odds: np.ndarray | None = None) -> np.ndarray:
        return expit(self.log_odds(log_odds_of(prob_covid, log_odds)))
