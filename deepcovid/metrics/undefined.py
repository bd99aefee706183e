"""Metrics that do not exist for some inputs: a clear reason instead of a crash or a silent 0."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


class UndefinedMetric(ValueError):
    """The metric is undefined for this input (e.g. one class only); the message says why."""


def class_counts(label: np.ndarray) -> tuple[int, int]:
    """(COVID, non-COVID) counts of a 0/1 label array; refuses anything else."""
    label = np.asarray(label)
    if label.size and not np.isin(label, (0, 1)).all():
        raise ValueError(f"labels must be 0 (non-COVID) or 1 (COVID), got {np.unique(label)}")
    n_positive = int(label.sum())
    return n_positive, int(label.size) - n_positive


def require_both_classes(label: np.ndarray, metric: str) -> None:
    """Raise :class:`UndefinedMetric` unless ``label`` holds both COVID and non-COVID cases."""
    n_positive, n_negative = class_counts(label)
    if n_positive == 0 or n_negative == 0:
        raise UndefinedMetric(
            f"{metric} needs both classes; got {n_positive} COVID and {n_negative} non-COVID"
        )


def or_reason(
    undefined: dict[str, str], key: str, compute: Callable[[], T], default: T | None = None
) -> T | None:
    """``compute()``, or ``default`` with the reason recorded as ``undefined[key]``."""
    try:
        return compute()
    except UndefinedMetric as reason:
        undefined[key] = str(reason)
        return default
