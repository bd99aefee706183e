"""The commands as users type them: python -m deepcovid.train|evaluate|predict|report, in
subprocesses (a few: importing the stack costs seconds per process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.conftest import best_checkpoint, tiny_overrides
from tests.utils.test_tracking import offline_runs, read_offline_run, read_run_record

PAPER_BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]


def command(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_cfg_job_prints_the_composed_config() -> None:
    printed = OmegaConf.create(
        command("deepcovid.train", "model=densenet121", "--cfg", "job").stdout
    )
    assert printed.model.backbone == "densenet121" and "hydra" not in printed
    assert printed.monitor == "val/auroc"


@pytest.mark.slow
def test_multirun_trains_all_four_paper_backbones_then_report(covidx5k_shared, tmp_path):
    sweep = tmp_path / "sweep"
    overrides = [o for o in tiny_overrides(covidx5k_shared, sweep) if o != "logger=csv"]
    command(
        "deepcovid.train", "-m", f"model={','.join(PAPER_BACKBONES)}", *overrides,
        "logger=wandb", "logger.wandb.mode=offline", f"hydra.sweep.dir={sweep}",
        "metrics.bootstrap_resamples=20",
    )  # fmt: skip
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [j.name for j in jobs] == [f"{i}-{m}" for i, m in enumerate(PAPER_BACKBONES)]
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert len(pd.read_csv(job / "predictions" / "test.csv")) == 14
    # Every job is its own W&B run, named after its folder and grouped under the sweep.
    runs = [read_offline_run(run) for job in jobs for run in offline_runs(job)]
    assert len({run["run_id"] for run in runs}) == len(PAPER_BACKBONES)
    assert [run["config"]["model.backbone"] for run in runs] == PAPER_BACKBONES
    assert all(run["state"] == "finished" for run in runs)
    records = [read_run_record(run) for job in jobs for run in offline_runs(job)]
    assert [r["display_name"] for r in records] == [job.name for job in jobs]
    assert {r["run_group"] for r in records} == {"sweep"}
    printed = command("deepcovid.report", str(sweep)).stdout
    assert str(sweep / "comparison" / "comparison.md") in printed
    table = pd.read_csv(sweep / "comparison" / "comparison.csv")
    assert list(table["model"].unique()) == PAPER_BACKBONES  # read from the evaluations


@pytest.mark.slow
def test_evaluate_then_predict_from_the_command_line(tiny_run, covidx5k_shared, tmp_path):
    checkpoint = best_checkpoint(tiny_run)
    run_dir = tmp_path / "eval"
    command(
        "deepcovid.evaluate", f"ckpt_path={checkpoint}", f"data.root={covidx5k_shared}",
        "data.num_workers=0", "trainer=cpu", "logger=wandb", "logger.wandb.mode=offline",
        "metrics.bootstrap_resamples=20", "split=val", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    metrics = json.loads((run_dir / "metrics" / "val.json").read_text())
    assert metrics["split"] == "val" and "optimistic" in (run_dir / "report.md").read_text()
    (run,) = offline_runs(run_dir)
    record = read_run_record(run)
    assert record["job_type"] == "eval" and "resnet18" in record.get("tags", [])
    assert read_offline_run(run)["summary"]["val/auroc"] == pytest.approx(metrics["auroc"])
    out = tmp_path / "predict"
    command(
        "deepcovid.predict", f"ckpt_path={checkpoint}", f"inputs={covidx5k_shared / 'test'}",
        "explainer=gradcam", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert len(pd.read_csv(out / "predictions.csv")) == 14
    assert len(list((out / "heatmaps").glob("*.png"))) == 14
