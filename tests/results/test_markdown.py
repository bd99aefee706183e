"""report.md's words for numbers: undefined values as n/a, intervals, differences with a true
minus, tables and the val-chosen operating points."""

import pytest

from deepcovid.metrics.intervals import Estimate
from deepcovid.metrics.operating_points import NO_INTERVAL, Counts, OperatingPoint
from deepcovid.results.markdown import (
    estimate_text,
    fraction,
    number,
    percent,
    point_row,
    sentence_for,
    table,
    threshold_text,
    with_ci,
)


def test_numbers_and_undefined_values() -> None:
    assert (number(0.95312), number(None), number(2 / 3, 1)) == ("0.953", "n/a", "0.7")
    assert (percent(0.975), percent(None)) == ("97.5 %", "n/a")
    assert (threshold_text(0.123456), threshold_text(None)) == ("0.1235", "n/a")
    assert (fraction(39, 1), fraction(0, 0)) == ("39/40", "–")
    assert estimate_text(Estimate(2.5, 1.25, 4.0, 0.95, "log"), 2) == "2.50 (1.25–4.00)"
    assert estimate_text(None) == "n/a"
    # a Wald interval without a standard error: NaN in memory, null once read back from JSON
    assert estimate_text(Estimate(-8.8, None, None, 0.95, "wald")) == "-8.800 (no interval)"
    assert estimate_text(Estimate(1.0, float("nan"), float("nan"), 0.95, "wald")) == (
        "1.000 (no interval)"
    )


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ((0.953, (0.912, 0.985)), "0.953 (0.912–0.985)"),
        ((0.975, (0.871, 0.996), True, "95 % CI "), "97.5 % (95 % CI 87.1–99.6 %)"),
        ((-0.03, (-0.142, 0.083)), "−0.030 (−0.142 to 0.083)"),
        ((0.9, NO_INTERVAL), "0.900"),
        ((0.9, NO_INTERVAL, True), "90.0 %"),
        ((None, (0.1, 0.2)), "n/a"),
    ],
)
def test_values_with_their_interval(args: tuple, text: str) -> None:
    assert with_ci(*args) == text


def test_a_pipe_table() -> None:
    assert table(["a", "b"], [[1, None]]) == "| a | b |\n|---|---|\n| 1 | None |"


def test_an_operating_point_in_a_row_and_a_sentence() -> None:
    counts = Counts(tp=39, fp=3, tn=57, fn=1)
    point = OperatingPoint("youden", 0.4213, 0.975, (0.871, 0.996), 0.95, (0.86, 0.99), counts)
    on_val = OperatingPoint("youden", 0.4213, 0.9, specificity=0.8)
    assert point_row(point) == ["0.4213", "97.5 % (87.1–99.6 %)", "39/40", "95.0 % (86.0–99.0 %)",
                                "57/60"]  # fmt: skip
    assert sentence_for(point, on_val, "test", "95 % CI") == (
        "- max. Youden's J on val, P(COVID) ≥ 0.4213 (on val: sensitivity 90.0 %, specificity "
        "80.0 %): test sensitivity 97.5 % (39/40; 95 % CI 87.1–99.6 %), specificity 95.0 % "
        "(57/60; 95 % CI 86.0–99.0 %)."
    )
    none = OperatingPoint("youden", None, undefined={"threshold": "val has one class"})
    assert sentence_for(none, None, "test", "95 % CI") == (
        "- max. Youden's J on val: no threshold (val has one class)."
    )
