"""Undefined metrics raise a reason, and the reason is kept where the result records it."""

import numpy as np
import pytest

from deepcovid.metrics.undefined import (
    UndefinedMetric,
    class_counts,
    or_reason,
    require_both_classes,
)


def test_class_counts_refuse_anything_but_0_and_1() -> None:
    assert class_counts(np.array([1, 0, 1, 1])) == (3, 1)
    assert class_counts(np.array([], dtype=int)) == (0, 0)
    with pytest.raises(ValueError, match=r"must be 0 \(non-COVID\) or 1 \(COVID\), got \[0 2\]"):
        class_counts(np.array([0, 2]))


def test_one_class_only_is_undefined_with_the_counts() -> None:
    require_both_classes(np.array([0, 1]), "AUROC")
    with pytest.raises(UndefinedMetric, match="AUROC needs both classes; got 3 COVID and 0 non"):
        require_both_classes(np.ones(3, dtype=int), "AUROC")


def test_or_reason_records_why_and_returns_the_default() -> None:
    undefined: dict[str, str] = {}
    assert or_reason(undefined, "auroc", lambda: 0.75) == 0.75 and undefined == {}

    def one_class() -> float:
        require_both_classes(np.zeros(2, dtype=int), "AUROC")
        return 1.0

    assert or_reason(undefined, "auroc", one_class, default=float("nan")) != 1.0
    assert undefined == {"auroc": "AUROC needs both classes; got 0 COVID and 2 non-COVID"}
    with pytest.raises(ZeroDivisionError):  # only UndefinedMetric is turned into a reason
        or_reason(undefined, "x", lambda: 1 / 0)
