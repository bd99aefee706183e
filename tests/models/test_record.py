"""The record a checkpoint carries: its val predictions, exactly, with their log-odds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepcovid.models.checkpoints import read_record
from deepcovid.models.record import frame_from_columns, frame_to_columns
from tests.conftest import best_checkpoint


def test_val_predictions_round_trip_exactly_with_their_log_odds() -> None:
    frame = pd.DataFrame({
        "path": ["a.png", "b.png"], "label": [1, 0], "prob_covid": [1.0, 0.25],
        "logit_covid": [40.5, -1.0986122886681098], "patient_id": ["p1", None],
    })  # fmt: skip
    back = frame_from_columns(frame_to_columns(frame))
    assert back["logit_covid"].tolist() == frame["logit_covid"].tolist()  # 1.0 keeps its 40.5
    assert back["prob_covid"].tolist() == frame["prob_covid"].tolist()
    assert back["patient_id"][0] == "p1" and pd.isna(back["patient_id"][1])


def test_a_record_written_before_the_log_odds_reads_without_them() -> None:
    columns = frame_to_columns(pd.DataFrame({"path": ["a"], "label": [1], "prob_covid": [0.5]}))
    assert "logit_covid" not in frame_from_columns(columns)


def test_a_trained_checkpoint_keeps_the_val_log_odds(tiny_run: Path) -> None:
    val = read_record(best_checkpoint(tiny_run)).val_predictions
    expected = 1 / (1 + np.exp(-val["logit_covid"].to_numpy()))
    np.testing.assert_allclose(val["prob_covid"].to_numpy(), expected, atol=1e-6)
