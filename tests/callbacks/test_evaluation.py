"""The final test of a training run writes the full evaluation, with thresholds chosen on the
val predictions of the tested checkpoint (from its record)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepcovid.metrics.threshold_selection import threshold_for_sensitivity, youden_threshold
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.models.record import CHECKPOINT_KEY
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.conftest import TINY_RUN, best_checkpoint, tiny_overrides

FILES = [
    "predictions/test.csv",
    "predictions/val.csv",
    "metrics/test.json",
    "plots/roc.png",
    "plots/pr.png",
    "plots/confusion_matrix.png",
    "plots/score_histogram.png",
    "plots/reliability.png",
    "plots/decision_curve.png",
    "report.md",
    "data_check.json",
]


def test_final_test_writes_the_evaluation(tiny_run: Path) -> None:
    for name in FILES:
        assert (tiny_run / name).is_file(), name
    metrics = json.loads((tiny_run / "metrics" / "test.json").read_text())
    best = best_checkpoint(tiny_run)
    assert metrics["model"]["backbone"] == "resnet18"
    assert metrics["model"]["checkpoint"] == str(best)
    assert metrics["model"]["seed"] == 42 and metrics["mode"] == "the training data"
    stored = torch.load(best, weights_only=True)[CHECKPOINT_KEY]
    val = pd.read_csv(tiny_run / "predictions" / "val.csv")
    assert [str(Path(p).relative_to(stored["data"]["root"])) for p in val["path"]] == stored[
        "val_predictions"
    ]["path"]
    chosen = {p["name"]: p for p in metrics["chosen_points"]}
    assert {p["chosen_on"] for p in chosen.values()} == {"val"}
    label, prob = val["label"].to_numpy(), val["prob_covid"].to_numpy()
    assert chosen["target_sensitivity"]["threshold"] == pytest.approx(
        threshold_for_sensitivity(label, prob, 0.98)
    )
    try:  # a 2-epoch model may not separate val at all: then the point is reported undefined
        expected = youden_threshold(label, prob)
    except UndefinedMetric as reason:
        assert chosen["youden"]["threshold"] is None
        assert str(reason) in json.dumps(chosen["youden"]["undefined"], ensure_ascii=False)
    else:
        assert chosen["youden"]["threshold"] == pytest.approx(expected)
    assert metrics["counts"]["n"] == len(pd.read_csv(tiny_run / "predictions" / "test.csv")) == 14
    recorded = {k: v["threshold"] for k, v in stored["operating_points"].items()}
    assert recorded == {k: p["threshold"] for k, p in chosen.items()}  # one choice, stored once


def test_test_metrics_have_one_writer_each(tiny_run: Path) -> None:
    logged = pd.read_csv(tiny_run / "csv" / "metrics.csv")
    test_rows = logged.dropna(subset=["test/auroc"])
    assert len(test_rows) == 1  # written once, by the evaluation
    metrics = json.loads((tiny_run / "metrics" / "test.json").read_text())
    assert test_rows["test/auroc"].iloc[0] == pytest.approx(metrics["auroc"])
    assert "test/sensitivity" not in logged  # the classifier logs val/* and the losses only


def test_test_only_run_reads_the_checkpoint(
    tiny_run: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    best = best_checkpoint(tiny_run)
    out = tmp_path / "again"
    overrides = tiny_overrides(covidx5k_shared, out, *TINY_RUN, "train=false", f"ckpt_path={best}")
    train(compose_config("train", overrides, str(out)))
    again = json.loads((out / "metrics" / "test.json").read_text())
    first = json.loads((tiny_run / "metrics" / "test.json").read_text())
    assert again["chosen_points"] == first["chosen_points"]
    assert again["auroc"] == first["auroc"]
