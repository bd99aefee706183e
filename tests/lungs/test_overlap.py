"""Dice, HD95 and their patient-bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from deepcovid.lungs.overlap import dice, hd95, mean_with_interval, summarize


def square(top: int, left: int, side: int, size: int = 100) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_dice_of_known_overlaps() -> None:
    a = square(10, 10, 20)
    assert dice(a, a) == pytest.approx(1.0)
    assert dice(a, square(10, 20, 20)) == pytest.approx(2 * 200 / 800)
    assert dice(np.zeros_like(a), a) == 0.0


def test_hd95_of_a_shifted_square_is_the_shift() -> None:
    a = square(20, 20, 40)
    assert hd95(a, a) == 0.0
    assert hd95(a, square(20, 25, 40)) == pytest.approx(5.0)
    assert hd95(square(20, 25, 40), a) == pytest.approx(5.0)  # symmetric
    assert math.isnan(hd95(np.zeros_like(a), a))


def test_hd95_ignores_the_farthest_5_percent() -> None:
    truth = square(0, 0, 60, size=200)
    prediction = truth.copy()
    prediction[150, 150] = True  # one far-away false-positive pixel
    assert hd95(prediction, truth) < 2.0


def test_interval_resamples_patients() -> None:
    values = np.array([0.9, 0.9, 0.9, 0.5])
    by_image = mean_with_interval(values, None, n_resamples=500)
    by_patient = mean_with_interval(values, np.array(["a", "a", "a", "b"]), n_resamples=500)
    assert by_image.mean == by_patient.mean == pytest.approx(0.8)
    assert by_patient.n_patients == 2 and by_image.n_patients == 4
    assert by_patient.low < by_image.low  # drawing patient b twice drops the mean to 0.5
    assert by_patient.low == pytest.approx(0.5)
    single = mean_with_interval(values, np.array(["a"] * 4))
    assert single.low is None and single.high is None and single.n_patients == 1


def test_summary_per_source() -> None:
    scores = pd.DataFrame(
        {
            "source": ["x", "x", "y", "y"],
            "patient_id": ["1", "2", "3", ""],
            "dice": [0.9, 0.8, 0.7, 0.6],
            "hd95_px": [3.0, np.nan, 5.0, 7.0],
            "hd95_px256": [3.0, np.nan, 5.0, 7.0],
            "quality_flag": ["", "x", "", ""],
        }
    )
    summary = summarize(scores, n_resamples=100)
    assert set(summary) == {"all", "x", "y"}
    assert summary["all"]["dice"]["mean"] == pytest.approx(0.75)
    assert summary["x"]["hd95_px"]["n_images"] == 1  # the empty prediction has no HD95
    assert summary["y"]["dice"]["n_patients"] == 2  # no patient id: its own patient
    assert summary["x"]["n_flagged"] == 1
