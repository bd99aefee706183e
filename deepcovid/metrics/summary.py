"""Everything ``metrics/<split>.json`` holds, from test (and validation) predictions.

Metrics that the data cannot give are ``None`` in the result, with the reason under the
``undefined`` key of the same object: the end of a long run never crashes on a degenerate split.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepcovid.metrics.bootstrap import Statistic, bootstrap_interval
from deepcovid.metrics.calibration import expected_calibration_error, reliability_bins
from deepcovid.metrics.discrimination import auroc, average_precision
from deepcovid.metrics.intervals import INTERVAL_METHODS
from deepcovid.metrics.operating_points import (
    NAN_PAIR,
    OperatingPoint,
    operating_point,
    unavailable_point,
)
from deepcovid.metrics.threshold_selection import select_threshold
from deepcovid.metrics.undefined import UndefinedMetric, class_counts, or_nan

PAPER_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class MetricSettings:
    """The knobs of the evaluation statistics (``conf/metrics/default.yaml``)."""

    thresholds: Sequence[float] = PAPER_THRESHOLDS
    interval: str = "wilson"
    confidence: float = 0.95
    target_sensitivity: float = 0.98
    target_specificity: float = 0.90
    bootstrap_resamples: int = 1000
    seed: int = 0
    calibration_bins: int = 10
    subgroups: Sequence[str] = ("source", "finding")

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        object.__setattr__(self, "subgroups", tuple(str(s) for s in self.subgroups))
        if self.interval not in INTERVAL_METHODS:
            raise ValueError(
                f"metrics.interval={self.interval!r}; choose one of {list(INTERVAL_METHODS)}"
            )
        if not all(0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"metrics.thresholds={list(self.thresholds)}: each must be in [0, 1]")
        for name in ("target_sensitivity", "target_specificity"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"metrics.{name}={getattr(self, name)}: must be in (0, 1]")

    def targets(self) -> dict[str, float | None]:
        """The target of each threshold-selection rule."""
        return {
            "target_sensitivity": self.target_sensitivity,
            "youden": None,
            "target_specificity": self.target_specificity,
        }


def jsonable(value: Any) -> Any:
    """``value`` with dataclasses, tuples and numpy scalars made plain, NaN and ±inf → None."""
    if dataclasses.is_dataclass(value):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(label, prob_covid) of a predictions frame."""
    return frame["label"].to_numpy(dtype=int), frame["prob_covid"].to_numpy(dtype=np.float64)


def class_summary(frame: pd.DataFrame) -> dict[str, int]:
    """Image counts of a predictions frame."""
    n_positive, n_negative = class_counts(frame["label"].to_numpy(dtype=int))
    return {"n": len(frame), "n_positive": n_positive, "n_negative": n_negative}


def patient_ids(frame: pd.DataFrame) -> pd.Series | None:
    """The patient id column when at least one image has one."""
    if "patient_id" in frame and frame["patient_id"].notna().any():
        return frame["patient_id"]
    return None


def chosen_points(
    test: pd.DataFrame, val: pd.DataFrame | None, settings: MetricSettings, val_reason: str
) -> tuple[list[OperatingPoint], list[OperatingPoint]]:
    """For each selection rule: (the point on test, the point on val) at the val threshold."""
    on_test, on_val = [], []
    for rule, target in settings.targets().items():
        common = {"name": rule, "target": target, "chosen_on": "val"}
        if val is None:
            on_test.append(unavailable_point(reason=val_reason, **common))
            continue
        try:
            threshold = select_threshold(rule, *arrays(val), target)
        except UndefinedMetric as reason:
            on_test.append(unavailable_point(reason=f"on the val split: {reason}", **common))
            continue
        options = {"interval": settings.interval, "confidence": settings.confidence}
        on_test.append(operating_point(*arrays(test), threshold, **common, **options))
        on_val.append(operating_point(*arrays(val), threshold, **common, **options))
    return on_test, on_val


def fixed_points(
    frame: pd.DataFrame, thresholds: Sequence[float], settings: MetricSettings
) -> list[OperatingPoint]:
    """Operating points at fixed thresholds, in increasing order."""
    label, prob = arrays(frame)
    return [
        operating_point(label, prob, t, "fixed", settings.interval, settings.confidence)
        for t in sorted(set(thresholds))
    ]


def with_interval(
    frame: pd.DataFrame, statistic: Statistic, settings: MetricSettings, name: str, undefined: dict
) -> tuple[float, tuple[float, float], int | None]:
    """(estimate, bootstrap interval, resamples used), NaN with reasons where undefined."""
    label, prob = arrays(frame)
    value = or_nan(undefined, name, lambda: statistic(label, prob), math.nan)
    if math.isnan(value):
        undefined[f"{name}_ci"] = undefined[name]
        return value, NAN_PAIR, None
    interval = or_nan(
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
        None,
    )
    if interval is None:
        return value, NAN_PAIR, None
    return value, (interval.low, interval.high), interval.n_valid


def subgroup_row(
    value: Any, group: pd.DataFrame, settings: MetricSettings, threshold: float
) -> dict[str, Any]:
    """Counts, AUROC, AP and the operating point at ``threshold`` of one subgroup."""
    undefined: dict[str, str] = {}
    label, prob = arrays(group)
    return {
        "value": value,
        **class_summary(group),
        "auroc": or_nan(undefined, "auroc", lambda: auroc(label, prob), math.nan),
        "average_precision": or_nan(
            undefined, "average_precision", lambda: average_precision(label, prob), math.nan
        ),
        "operating_point": fixed_points(group, [threshold], settings)[0],
        "undefined": undefined,
    }


def subgroup_summary(
    frame: pd.DataFrame, settings: MetricSettings, threshold: float
) -> dict[str, list[dict]]:
    """Per value of each subgroup column present in ``frame``: see :func:`subgroup_row`."""
    return {
        column: [
            subgroup_row(value, group, settings, threshold)
            for value, group in frame.groupby(column, sort=True)
        ]
        for column in settings.subgroups
        if column in frame and frame[column].notna().any()
    }


def summarize(
    test: pd.DataFrame,
    val: pd.DataFrame | None,
    settings: MetricSettings,
    threshold: float,
    split: str = "test",
    val_reason: str = "no validation predictions were given",
) -> dict[str, Any]:
    """The metrics of ``split`` as a JSON-ready dict (see ``metrics/test.json``).

    ``threshold`` is the model's default cut-off (added to the fixed ones, used for subgroups);
    the selection rules choose their thresholds on ``val`` (``val_reason`` says why it is None).
    """
    undefined: dict[str, str] = {}
    label, prob = arrays(test)
    auroc_value, auroc_ci, auroc_valid = with_interval(test, auroc, settings, "auroc", undefined)
    ap_value, ap_ci, ap_valid = with_interval(
        test, average_precision, settings, "average_precision", undefined
    )
    ids = patient_ids(test)
    bins = settings.calibration_bins
    on_test, on_val = chosen_points(test, val, settings, val_reason)
    summary = {
        "split": split,
        **class_summary(test),
        "n_patients": None if ids is None else int(ids.nunique()),
        "threshold": threshold,
        "auroc": auroc_value,
        "auroc_ci": auroc_ci,
        "average_precision": ap_value,
        "average_precision_ci": ap_ci,
        "ece": or_nan(
            undefined, "ece", lambda: expected_calibration_error(label, prob, bins), math.nan
        ),
        "confidence": settings.confidence,
        "interval": settings.interval,
        "bootstrap": {
            "n_resamples": settings.bootstrap_resamples,
            "unit": "image" if ids is None else "patient",
            "seed": settings.seed,
            "n_valid": {"auroc": auroc_valid, "average_precision": ap_valid},
        },
        "calibration": {"n_bins": bins, "bins": reliability_bins(label, prob, bins)},
        "operating_points": fixed_points(test, [*settings.thresholds, threshold], settings)
        + on_test,
        "validation": None if val is None else {**class_summary(val), "operating_points": on_val},
        "subgroups": subgroup_summary(test, settings, threshold),
        "undefined": undefined,
    }
    return jsonable(summary)
