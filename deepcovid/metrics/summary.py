"""The evaluation of one split as one typed object (:class:`Evaluation`), from its predictions
and the validation predictions its operating points are chosen on.

Figures, report.md, the comparison table and W&B read this object; it is turned into JSON only
when written (``metrics/<split>.json``) and read back with :meth:`Evaluation.from_json`.
Metrics that the data cannot give are None, with the reason under ``undefined``: the end of a
long run never crashes on a degenerate split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from deepcovid.metrics.bootstrap import Statistic, bootstrap_interval
from deepcovid.metrics.calibration import (
    PlattScaling,
    ReliabilityBins,
    TemperatureScaling,
    brier_with_interval,
    calibration_intercept,
    calibration_slope,
    expected_calibration_error,
    log_odds_of,
    reliability_bins,
    saturated_count,
)
from deepcovid.metrics.decision import DecisionCurve, decision_curve
from deepcovid.metrics.discrimination import auroc, average_precision
from deepcovid.metrics.intervals import Estimate, IntervalMethod, few_patients
from deepcovid.metrics.operating_points import (
    NO_INTERVAL,
    Interval,
    OperatingPoint,
    Scalar,
    operating_point,
    unavailable_point,
    with_bounds,
)
from deepcovid.metrics.threshold_selection import SELECTION_RULES, select_threshold
from deepcovid.metrics.undefined import UndefinedMetric, class_counts, or_reason
from deepcovid.utils.choices import checked_choice
from deepcovid.utils.serialize import from_jsonable, to_jsonable

PAPER_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class MetricSettings:
    """The knobs of the evaluation statistics (``conf/metrics/default.yaml``)."""

    thresholds: Sequence[float] = PAPER_THRESHOLDS
    interval: str = "auto"  # deff_wilson with patient ids, else wilson (metrics.intervals)
    confidence: float = 0.95
    prevalence: float | None = None  # for PPV and NPV; None = the evaluated split's
    target_sensitivity: float = 0.98
    target_specificity: float = 0.90
    bootstrap_resamples: int = 1000
    seed: int = 0
    calibration_bins: int = 10
    subgroups: Sequence[str] = ("source", "finding")

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        object.__setattr__(self, "subgroups", tuple(str(s) for s in self.subgroups))
        interval = checked_choice("metrics.interval", self.interval, IntervalMethod)
        object.__setattr__(self, "interval", interval)  # plain text in results
        if self.prevalence is not None and not 0.0 < self.prevalence < 1.0:
            raise ValueError(f"metrics.prevalence={self.prevalence}: must lie in (0, 1)")
        if not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"metrics.thresholds={list(self.thresholds)}: each must be in [0, 1]")
        for name in ("target_sensitivity", "target_specificity"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"metrics.{name}={getattr(self, name)}: must be in (0, 1]")

    def targets(self) -> dict[str, float | None]:
        """The target of each threshold-selection rule (a rule named like a setting has it)."""
        return {rule: getattr(self, rule, None) for rule in SELECTION_RULES}


@dataclass
class MetricsConfig:
    """``conf/metrics``'s schema (registered in ``deepcovid/conf``): Hydra checks each key's
    type, and ``interval`` against its choices, when it composes the config."""

    _target_: str = f"{__name__}.MetricSettings"
    thresholds: list[float] = field(default_factory=lambda: list(MetricSettings.thresholds))
    interval: IntervalMethod = IntervalMethod(MetricSettings.interval)
    confidence: float = MetricSettings.confidence
    prevalence: float | None = MetricSettings.prevalence
    target_sensitivity: float = MetricSettings.target_sensitivity
    target_specificity: float = MetricSettings.target_specificity
    bootstrap_resamples: int = MetricSettings.bootstrap_resamples
    seed: int = MetricSettings.seed
    calibration_bins: int = MetricSettings.calibration_bins
    subgroups: list[str] = field(default_factory=lambda: list(MetricSettings.subgroups))


def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(label, prob_covid) of a predictions frame."""
    return frame["label"].to_numpy(dtype=int), frame["prob_covid"].to_numpy(dtype=np.float64)


def stored_log_odds(frame: pd.DataFrame) -> np.ndarray | None:
    """The ``logit_covid`` column when every image has one (older prediction files have none)."""
    if "logit_covid" in frame and frame["logit_covid"].notna().all():
        return frame["logit_covid"].to_numpy(dtype=np.float64)
    return None


def patient_ids(frame: pd.DataFrame) -> pd.Series | None:
    """The patient id column when at least one image has one."""
    if "patient_id" in frame and frame["patient_id"].notna().any():
        return frame["patient_id"]
    return None


@dataclass(frozen=True)
class ClassSummary:
    """Image counts of a split; with patient ids, the identified patients and the images
    without an id (each counted as its own patient by the patient-aware statistics)."""

    n: int
    n_positive: int
    n_negative: int
    n_patients: int | None = None
    n_without_id: int = 0

    @classmethod
    def of(cls, frame: pd.DataFrame) -> ClassSummary:
        n_positive, n_negative = class_counts(frame["label"].to_numpy(dtype=int))
        ids = patient_ids(frame)
        if ids is None:
            return cls(len(frame), n_positive, n_negative)
        return cls(len(frame), n_positive, n_negative, ids.nunique(), int(ids.isna().sum()))


@dataclass(frozen=True)
class BootstrapSettings:
    """How the AUROC and AP intervals were resampled."""

    n_resamples: int
    unit: str  # "patient" or "image"
    seed: int
    n_valid: dict[str, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Recalibration:
    """A recalibration fitted on val and applied to the evaluated scores, and the calibration
    of the recalibrated scores."""

    method: str  # platt | temperature
    parameters: dict[str, float]
    ece: float | None
    brier: Estimate | None
    intercept: Estimate | None
    slope: Estimate | None
    undefined: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error and the reliability diagram's bins; the Brier score, the
    calibration intercept (in-the-large) and slope with intervals; and the same after Platt and
    temperature scaling fitted on val. ``fitted_on``: what the logistic fits took as logit(p),
    "log-odds" (stored with the predictions) or "clipped logit" (older prediction files:
    probabilities only), then with the number of ``saturated`` scores the clip changed."""

    ece: float | None
    n_bins: int
    bins: ReliabilityBins
    brier: Estimate | None = None
    intercept: Estimate | None = None
    slope: Estimate | None = None
    recalibrated: list[Recalibration] = field(default_factory=list)
    fitted_on: str = "clipped logit"
    saturated: int | None = None


@dataclass(frozen=True)
class Subgroup:
    """One value of a subgroup column (e.g. one source): counts, AUROC (with its bootstrap
    interval), AP, and the operating point at the model's threshold."""

    value: str
    counts: ClassSummary
    auroc: float | None
    average_precision: float | None
    point: OperatingPoint
    undefined: dict[str, str] = field(default_factory=dict)
    auroc_ci: Interval = NO_INTERVAL


@dataclass(frozen=True)
class Validation:
    """The split the operating points were chosen on: where it comes from, its counts, and
    each chosen point applied to it."""

    source: str
    counts: ClassSummary
    points: list[OperatingPoint]


@dataclass(frozen=True)
class ModelInfo:
    """Which model was evaluated: its backbone, checkpoint, starting weights, and the seed,
    cross-validation fold and held-out source of its training run."""

    backbone: str
    checkpoint: str | None = None
    pretrained_on: tuple[str, ...] = ()
    seed: int | None = None
    fold: int | None = None
    num_folds: int | None = None
    holdout_source: str | None = None
    ensemble: str | None = None  # what an ensemble or TTA averages, in words (models/ensemble)


@dataclass(frozen=True)
class Evaluation:
    """Everything ``metrics/<split>.json`` holds (see the module docstring)."""

    split: str
    counts: ClassSummary
    threshold: float  # the model's default cut-off (among the fixed points; subgroups use it)
    auroc: float | None
    auroc_ci: Interval
    average_precision: float | None
    average_precision_ci: Interval
    bootstrap: BootstrapSettings
    calibration: Calibration
    fixed_points: list[OperatingPoint]
    chosen_points: list[OperatingPoint]
    validation: Validation | None
    subgroups: dict[str, list[Subgroup]]
    decision_curve: DecisionCurve | None
    confidence: float
    interval: str
    model: ModelInfo
    mode: str = "the training data"  # or "external data, frozen / site-recalibrated …"
    precision: str = "32-true"
    skipped: dict[str, str] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def point_at(self, threshold: float) -> OperatingPoint:
        """The fixed operating point at ``threshold``."""
        return next(p for p in self.fixed_points if p.threshold == threshold)

    def scalars(self, points: bool = True) -> dict[str, Scalar]:
        """The evaluation as flat keys, for loggers and ``comparison.csv``: n, n_positive,
        n_negative, auroc and average_precision (each with ``_low`` and ``_high``), ece,
        skipped_files; with ``points``, each operating point's :meth:`OperatingPoint.scalars`
        under ``<point.key>/``. A new headline number is added here and nowhere else."""
        flat = {
            "n": self.counts.n,
            "n_positive": self.counts.n_positive,
            "n_negative": self.counts.n_negative,
            **with_bounds("auroc", self.auroc, self.auroc_ci),
            **with_bounds("average_precision", self.average_precision, self.average_precision_ci),
            "ece": self.calibration.ece,
            "skipped_files": len(self.skipped),
        }
        if points:
            for point in [*self.fixed_points, *self.chosen_points]:
                flat |= {f"{point.key}/{k}": v for k, v in point.scalars().items()}
        return flat

    @property
    def interval_used(self) -> str:
        """How the sensitivity and specificity intervals were made (``auto`` resolved)."""
        return next((p.interval for p in self.fixed_points if p.interval), self.interval)

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Evaluation:
        return from_jsonable(cls, data)


def choose_thresholds(val: pd.DataFrame, settings: MetricSettings) -> dict[str, dict[str, Any]]:
    """Per selection rule, the threshold chosen on ``val`` (None with the reason if none)."""
    chosen = {}
    for rule, target in settings.targets().items():
        try:
            threshold, reason = select_threshold(rule, *arrays(val), target), None
        except UndefinedMetric as error:
            threshold, reason = None, str(error)
        chosen[rule] = {"threshold": threshold, "target": target, "reason": reason}
    return chosen


def point_at(
    frame: pd.DataFrame, threshold: float, settings: MetricSettings, **labels: Any
) -> OperatingPoint:
    """The operating point of ``frame`` at ``threshold`` (patient-aware where ids exist; under
    ``auto``, the patient bootstrap where :func:`few_patients` finds the design effect
    unreliable)."""
    interval = settings.interval
    if interval == "auto" and few_patients(frame["label"].to_numpy(), patient_ids(frame)):
        interval = "patient_bootstrap"
    return operating_point(
        *arrays(frame),
        threshold,
        interval=interval,
        confidence=settings.confidence,
        patient_id=patient_ids(frame),
        prevalence=settings.prevalence,
        seed=settings.seed,
        **labels,
    )


def chosen_points(
    test: pd.DataFrame,
    val: pd.DataFrame | None,
    settings: MetricSettings,
    chosen_on: str,
    val_reason: str,
) -> tuple[list[OperatingPoint], list[OperatingPoint]]:
    """For each selection rule: (the point on test, the point on val) at the val threshold."""
    if val is None:
        return [
            unavailable_point(rule, val_reason, target, chosen_on)
            for rule, target in settings.targets().items()
        ], []
    on_test, on_val = [], []
    for rule, choice in choose_thresholds(val, settings).items():
        common = {"name": rule, "target": choice["target"], "chosen_on": chosen_on}
        if choice["threshold"] is None:
            on_test.append(unavailable_point(reason=f"on val: {choice['reason']}", **common))
            continue
        on_test.append(point_at(test, choice["threshold"], settings, **common))
        on_val.append(point_at(val, choice["threshold"], settings, **common))
    return on_test, on_val


def fixed_points(
    frame: pd.DataFrame, thresholds: Sequence[float], settings: MetricSettings
) -> list[OperatingPoint]:
    """Operating points at fixed thresholds, in increasing order."""
    return [point_at(frame, t, settings, name="fixed") for t in sorted(set(thresholds))]


def with_interval(
    frame: pd.DataFrame, statistic: Statistic, settings: MetricSettings, name: str, undefined: dict
) -> tuple[float | None, Interval, int | None]:
    """(estimate, bootstrap interval, resamples used); None with reasons where undefined."""
    label, prob = arrays(frame)
    value = or_reason(undefined, name, lambda: statistic(label, prob))
    if value is None:
        undefined[f"{name}_ci"] = undefined[name]
        return None, NO_INTERVAL, None
    interval = or_reason(
        undefined,
        f"{name}_ci",
        lambda: bootstrap_interval(
            label,
            prob,
            statistic,
            patient_ids(frame),
            settings.bootstrap_resamples,
            settings.confidence,
            settings.seed,
        ),
    )
    if interval is None:
        return value, NO_INTERVAL, None
    return value, (interval.low, interval.high), interval.n_valid


def subgroup(
    value: Any, group: pd.DataFrame, settings: MetricSettings, threshold: float
) -> Subgroup:
    """Counts, AUROC, AP and the operating point at ``threshold`` of one subgroup."""
    undefined: dict[str, str] = {}
    label, prob = arrays(group)
    auroc_value, auroc_ci, _ = with_interval(group, auroc, settings, "auroc", undefined)
    return Subgroup(
        value=str(value),
        counts=ClassSummary.of(group),
        auroc=auroc_value,
        auroc_ci=auroc_ci,
        average_precision=or_reason(
            undefined, "average_precision", lambda: average_precision(label, prob)
        ),
        point=fixed_points(group, [threshold], settings)[0],
        undefined=undefined,
    )


def subgroups(
    frame: pd.DataFrame, settings: MetricSettings, threshold: float
) -> dict[str, list[Subgroup]]:
    """Per value of each subgroup column present in ``frame``: see :func:`subgroup`."""
    return {
        column: [
            subgroup(value, group, settings, threshold)
            for value, group in frame.groupby(column, sort=True)
        ]
        for column in settings.subgroups
        if column in frame and frame[column].notna().any()
    }


def calibration_of(
    label: np.ndarray, prob: np.ndarray, ids: pd.Series | None, settings: MetricSettings,
    undefined: dict[str, str], prefix: str = "", log_odds: np.ndarray | None = None,
) -> dict[str, Any]:  # fmt: skip
    """ECE, Brier, intercept and slope of scores (the fits on ``log_odds`` where given), None
    with reasons where undefined."""
    c = settings.confidence
    return {
        "ece": or_reason(
            undefined,
            f"{prefix}ece",
            lambda: expected_calibration_error(label, prob, settings.calibration_bins),
        ),
        "brier": or_reason(
            undefined,
            f"{prefix}brier",
            lambda: brier_with_interval(
                label,
                prob,
                ids,
                n_resamples=settings.bootstrap_resamples,
                confidence=c,
                seed=settings.seed,
            ),
        ),
        "intercept": or_reason(
            undefined,
            f"{prefix}intercept",
            lambda: calibration_intercept(label, prob, ids, c, log_odds),
        ),
        "slope": or_reason(
            undefined, f"{prefix}slope", lambda: calibration_slope(label, prob, ids, c, log_odds)
        ),
    }


def recalibrations(
    test: pd.DataFrame, val: pd.DataFrame | None, settings: MetricSettings, undefined: dict
) -> list[Recalibration]:
    """Platt and temperature scaling fitted on ``val``, applied to ``test`` (both on their
    stored log-odds where they have them); the recalibrated scores' fits take their exact
    recalibrated log-odds."""
    if val is None:
        return []
    label, prob = arrays(test)
    z = log_odds_of(prob, stored_log_odds(test))
    found = []
    for method, kind in (("platt", PlattScaling), ("temperature", TemperatureScaling)):
        fitted = or_reason(
            undefined,
            f"recalibration_{method}",
            lambda k=kind: k.fit(*arrays(val), stored_log_odds(val)),
        )
        if fitted is None:
            continue
        reasons: dict[str, str] = {}
        new_z = fitted.log_odds(z)
        scores = calibration_of(
            label, expit(new_z), patient_ids(test), settings, reasons, log_odds=new_z
        )
        found.append(Recalibration(method, vars(fitted), **scores, undefined=reasons))
    return found


def few_patients_note(frame: pd.DataFrame, settings: MetricSettings) -> list[str]:
    """The warning, when the split's patients make the design-effect interval unreliable."""
    reason = few_patients(frame["label"].to_numpy(), patient_ids(frame))
    if reason is None:
        return []
    used = (
        "so the sensitivity and specificity intervals are patient bootstrap intervals "
        "(metrics.interval=auto) instead of design-effect Wilson ones"
        if settings.interval == "auto"
        else f"and metrics.interval={settings.interval} was used as set"
    )
    return [
        f"The images cluster in few patients: {reason}. The design effect behind the "
        f"patient-aware Wilson interval is then poorly estimated, {used}; with so few "
        "independent patients every interval here is likely too narrow (in a simulation of 15 "
        "patients, one holding half the images, both covered 88–89 % for a nominal 95 %)."
    ]


def summarize(
    test: pd.DataFrame,
    val: pd.DataFrame | None,
    settings: MetricSettings,
    threshold: float,
    model: ModelInfo,
    split: str = "test",
    chosen_on: str = "val",
    val_source: str = "the val split of the same data",
    val_reason: str = "no validation predictions were given",
    precision: str = "32-true",
    skipped: dict[str, str] | None = None,
    notes: Sequence[str] = (),
    mode: str = "the training data",
) -> Evaluation:
    """The :class:`Evaluation` of ``split``.

    ``threshold`` is the model's default cut-off (added to the fixed ones, used for subgroups);
    the selection rules choose their thresholds on ``val`` (``val_source`` says what it is,
    ``val_reason`` why it is None) and are labelled ``chosen_on``.
    """
    undefined: dict[str, str] = {}
    label, prob = arrays(test)
    log_odds = stored_log_odds(test)
    auroc_value, auroc_ci, auroc_valid = with_interval(test, auroc, settings, "auroc", undefined)
    ap_value, ap_ci, ap_valid = with_interval(
        test, average_precision, settings, "average_precision", undefined
    )
    bins = settings.calibration_bins
    on_test, on_val = chosen_points(test, val, settings, chosen_on, val_reason)
    return Evaluation(
        split=split,
        counts=ClassSummary.of(test),
        threshold=float(threshold),
        auroc=auroc_value,
        auroc_ci=auroc_ci,
        average_precision=ap_value,
        average_precision_ci=ap_ci,
        bootstrap=BootstrapSettings(
            settings.bootstrap_resamples,
            "image" if patient_ids(test) is None else "patient",
            settings.seed,
            {"auroc": auroc_valid, "average_precision": ap_valid},
        ),
        calibration=Calibration(
            n_bins=bins,
            bins=reliability_bins(label, prob, bins),
            **calibration_of(label, prob, patient_ids(test), settings, undefined, "", log_odds),
            recalibrated=recalibrations(test, val, settings, undefined),
            fitted_on="clipped logit" if log_odds is None else "log-odds",
            saturated=saturated_count(prob) if log_odds is None else None,
        ),
        fixed_points=fixed_points(test, [*settings.thresholds, threshold], settings),
        chosen_points=on_test,
        validation=None if val is None else Validation(val_source, ClassSummary.of(val), on_val),
        subgroups=subgroups(test, settings, threshold),
        decision_curve=or_reason(undefined, "decision_curve", lambda: decision_curve(label, prob)),
        confidence=settings.confidence,
        interval=settings.interval,
        model=model,
        mode=mode,
        precision=precision,
        skipped=dict(sorted((skipped or {}).items())),
        undefined=undefined,
        notes=[*notes, *few_patients_note(test, settings)],
    )
