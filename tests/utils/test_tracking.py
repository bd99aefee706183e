"""W&B: mode resolution, config flattening, and an offline run read back from its files."""

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from deepcovid.train import train
from deepcovid.utils.config import compose_config
from deepcovid.utils.tracking import flatten_config, resolve_wandb_mode, wandb_logger
from tests.conftest import tiny_overrides


def read_offline_run(run_dir: Path) -> dict:
    """Summary, config and tags of an offline run, through wandb's own log reader."""
    result = subprocess.run(
        ["wandb", "leet", "inspect", "--summary", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout)


def read_run_record(run_dir: Path) -> dict:
    """The run record (id, group, display name, tags) of an offline run's log."""
    result = subprocess.run(
        ["wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return next(r["run"] for r in records if r.get("type") == "run")


def offline_runs(output_dir: Path) -> list[Path]:
    return sorted((output_dir / "wandb").glob("offline-run-*"))


def test_mode_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert resolve_wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_wandb_mode("auto") == "disabled"
    assert resolve_wandb_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "auto")  # not a mode W&B reads: the credentials decide
    assert resolve_wandb_mode("auto") == "online"
    wrong = (
        r"^logger\.wandb\.mode='sometimes'; "
        r"choose one of \['auto', 'online', 'offline', 'disabled'\]$"
    )
    with pytest.raises(ValueError, match=wrong):
        resolve_wandb_mode("sometimes")
    with pytest.raises(ValueError, match=wrong):  # when the logger is built, before training
        wandb_logger(mode="sometimes")
    assert wandb_logger(mode="disabled") is None


def test_offline_refuses_log_model_without_failing(tmp_path: Path) -> None:
    logger = wandb_logger(mode="offline", log_model=True, save_dir=str(tmp_path))
    assert logger is not None and logger._log_model is False


def test_unreachable_wandb_falls_back_to_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import wandb

    real_init = wandb.init
    modes = []

    def init(*args, **kwargs):
        modes.append(kwargs.get("mode"))
        if kwargs.get("mode") != "offline":
            raise wandb.errors.CommError("api.wandb.ai unreachable")
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", init)
    logger = wandb_logger(mode="online", save_dir=str(tmp_path), project="t")
    assert modes == ["online"]
    assert logger is not None and logger._offline and logger._log_model is False
    logger.log_metrics({"x": 1.0})
    assert modes == ["online", "offline"]
    logger.experiment.finish()
    assert offline_runs(tmp_path)


def test_log_evaluation_sends_the_evaluations_scalars_under_its_split(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    from deepcovid.utils.tracking import log_evaluation
    from tests.metrics.test_summary import evaluate, frame

    e = evaluate(frame(60, 0), frame(30, 1))
    logger = CSVLogger(str(tmp_path), name="run")
    log_evaluation([logger], e.split, e.scalars(), {})
    logged = pd.read_csv(Path(logger.log_dir) / "metrics.csv").iloc[0]
    assert logged["test/auroc"] == pytest.approx(e.auroc)
    assert logged["test/auroc_low"] == pytest.approx(e.auroc_ci[0])
    assert logged["test/fixed@0.5/tn"] == e.point_at(0.5).counts.tn
    youden = next(p for p in e.chosen_points if p.name == "youden")
    assert logged["test/youden/threshold"] == pytest.approx(youden.threshold)
    numeric = {k for k, v in e.scalars().items() if v is not None}
    assert {c for c in logged.index if c.startswith("test/")} == {f"test/{k}" for k in numeric}


def test_flatten_config() -> None:
    cfg = OmegaConf.create({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": {}})
    assert flatten_config(cfg) == {"a.b": 1, "a.c.d": "x", "e": [1, 2], "f": {}}


@pytest.mark.slow
def test_offline_training_run_is_complete(covidx5k_shared: Path, tmp_path: Path) -> None:
    overrides = [o for o in tiny_overrides(covidx5k_shared, tmp_path) if o != "logger=csv"]
    cfg = compose_config(
        "train",
        [
            *overrides,
            "logger=wandb",
            "logger.wandb.mode=offline",
            "model=squeezenet",
            "explainer=gradcam",
        ],
        output_dir=str(tmp_path),
    )
    train(cfg)
    runs = offline_runs(tmp_path)
    assert len(runs) == 1
    run = read_offline_run(runs[0])
    assert run["state"] == "finished"
    assert run["config"]["model.backbone"] == "squeezenet"
    assert run["config"]["data.image_size"] == 32
    assert {"squeezenet", "finetune-head"} <= set(run["tags"])
    for key in ("val/auroc", "train/loss_epoch", "test/auroc", "val/auroc_best"):
        assert key in run["summary"], key
    assert "test/sensitivity" not in run["summary"]  # one writer per key: the evaluation
    # the final evaluation, with its intervals and operating points, and its figures
    metrics = json.loads((tmp_path / "metrics" / "test.json").read_text())
    summary = run["summary"]
    assert summary["test/auroc_low"] == pytest.approx(metrics["auroc_ci"][0])
    assert summary["test/auroc_high"] == pytest.approx(metrics["auroc_ci"][1])
    fixed = next(p for p in metrics["fixed_points"] if p["threshold"] == 0.2)
    assert summary["test/fixed@0.2/sensitivity_low"] == pytest.approx(fixed["sensitivity_ci"][0])
    assert summary["test/fixed@0.2/tp"] == fixed["counts"]["tp"]
    best = torch.load(next((tmp_path / "checkpoints").glob("best-*.ckpt")), weights_only=True)
    assert summary["val/auroc_best_epoch"] == best["epoch"]
    assert "test/target_sensitivity/threshold" in summary
    assert "test/plots" in summary  # the ROC, PR, confusion matrix, histogram, reliability
    assert "heatmaps/test/gradcam" in summary  # the heatmap panel
