"""The final test of a training run writes the full evaluation, with thresholds chosen on the
val predictions of the tested checkpoint (stored in it)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepcovid.callbacks.evaluation import CHECKPOINT_KEY
from deepcovid.metrics.threshold_selection import threshold_for_sensitivity, youden_threshold
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.conftest import tiny_overrides

FILES = [
    "predictions/test.csv",
    "predictions/val.csv",
    "metrics/test.json",
    "plots/roc.png",
    "plots/pr.png",
    "plots/confusion_matrix.png",
    "plots/score_histogram.png",
    "plots/reliability.png",
    "report.md",
]


def run(root: Path, out: Path, *extra: str) -> None:
    overrides = tiny_overrides(
        root, out, "data.val_fraction=0.25", "metrics.bootstrap_resamples=30", *extra
    )
    train(compose_config("train", overrides, output_dir=str(out)))


@pytest.fixture(scope="module")
def trained(covidx5k_shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    run(covidx5k_shared, out, "trainer.max_epochs=2")
    return out


def best_checkpoint(run_dir: Path) -> Path:
    (best,) = (run_dir / "checkpoints").glob("best-epoch*.ckpt")
    return best


def test_final_test_writes_the_evaluation(trained: Path) -> None:
    for name in FILES:
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics" / "test.json").read_text())
    best = best_checkpoint(trained)
    assert metrics["model"] == {"backbone": "resnet18", "checkpoint": str(best)}
    stored = torch.load(best, weights_only=True)
    assert stored[CHECKPOINT_KEY]["global_step"] == stored["global_step"]
    val = pd.read_csv(trained / "predictions" / "val.csv")
    assert list(val["path"]) == stored[CHECKPOINT_KEY]["path"]
    chosen = {p["name"]: p for p in metrics["operating_points"] if p["chosen_on"] == "val"}
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
    assert metrics["n"] == len(pd.read_csv(trained / "predictions" / "test.csv")) == 14


def test_val_predictions_belong_to_the_tested_checkpoint(trained: Path) -> None:
    """Each checkpoint carries the predictions of its own validation epoch."""
    last = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    best = torch.load(best_checkpoint(trained), weights_only=True)
    assert last[CHECKPOINT_KEY]["global_step"] == last["global_step"] == 4
    assert best[CHECKPOINT_KEY]["global_step"] == best["global_step"]


def test_test_only_run_reads_the_checkpoint(
    trained: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    best = best_checkpoint(trained)
    run(covidx5k_shared, tmp_path / "with", "train=false", f"ckpt_path={best}")
    again = json.loads((tmp_path / "with" / "metrics" / "test.json").read_text())
    first = json.loads((trained / "metrics" / "test.json").read_text())
    assert again["operating_points"] == first["operating_points"]
    state = torch.load(best, weights_only=True)
    del state[CHECKPOINT_KEY]
    bare = tmp_path / "bare.ckpt"
    torch.save(state, bare)
    run(covidx5k_shared, tmp_path / "without", "train=false", f"ckpt_path={bare}")
    metrics = json.loads((tmp_path / "without" / "metrics" / "test.json").read_text())
    chosen = [p for p in metrics["operating_points"] if p["chosen_on"]]
    assert all(p["threshold"] is None for p in chosen)
    assert "holds no validation predictions" in chosen[0]["undefined"]["threshold"]
    assert metrics["auroc"] == first["auroc"]  # the rest is unaffected
