"""Real (tiny) training runs through the Hydra configs and the CLI."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.conftest import tiny_overrides
from tests.utils.test_tracking import offline_runs, read_offline_run, read_run_record

PAPER_BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]


def run(root: Path, out: Path, *extra: str) -> dict[str, float]:
    cfg = compose_config("train", tiny_overrides(root, out, *extra), output_dir=str(out))
    return train(cfg)


def test_train_writes_checkpoints_and_test_predictions(covidx5k_shared: Path, tmp_path: Path):
    metrics = run(covidx5k_shared, tmp_path, "model=resnet18", "data.val_fraction=0.25")
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "checkpoints").glob("best-epoch*.ckpt"))
    predictions = pd.read_csv(tmp_path / "predictions" / "test.csv")
    assert list(predictions.columns[:3]) == ["path", "label", "prob_covid"]
    assert len(predictions) == 14 and predictions["path"].is_unique
    assert predictions["prob_covid"].between(0, 1).all()
    assert {"val/auroc", "test/auroc", "test/sensitivity"} <= metrics.keys()
    assert 0.0 <= metrics["test/auroc"] <= 1.0


def test_resume_from_checkpoint_continues_training(covidx5k_shared: Path, tmp_path: Path):
    first = tmp_path / "first"
    run(covidx5k_shared, first, "test=false")
    state = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 0 and state["global_step"] == 2
    second = tmp_path / "second"
    run(
        covidx5k_shared,
        second,
        "test=false",
        "trainer.max_epochs=2",
        f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}",
    )
    resumed = torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 4  # one more epoch, not two


@pytest.mark.slow
def test_multirun_trains_all_four_paper_backbones(covidx5k_shared: Path, tmp_path: Path):
    sweep = tmp_path / "sweep"
    overrides = [o for o in tiny_overrides(covidx5k_shared, sweep) if o != "logger=csv"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deepcovid.train",
            "-m",
            f"model={','.join(PAPER_BACKBONES)}",
            *overrides,
            "logger=wandb",
            "logger.wandb.mode=offline",
            f"hydra.sweep.dir={sweep}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [j.name for j in jobs] == [f"{i}-{m}" for i, m in enumerate(PAPER_BACKBONES)]
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert len(pd.read_csv(job / "predictions" / "test.csv")) == 14
        assert (job / ".hydra" / "config.yaml").is_file()
    # Every job is its own W&B run, named after its folder and grouped under the sweep.
    runs = [read_offline_run(run) for job in jobs for run in offline_runs(job)]
    assert len({run["run_id"] for run in runs}) == len(PAPER_BACKBONES)
    assert [run["config"]["model.backbone"] for run in runs] == PAPER_BACKBONES
    assert all(run["state"] == "finished" for run in runs)
    records = [read_run_record(run) for job in jobs for run in offline_runs(job)]
    assert [r["display_name"] for r in records] == [job.name for job in jobs]
    assert {r["run_group"] for r in records} == {"sweep"}
