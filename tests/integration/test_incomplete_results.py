"""A finished run resumed and stopped by SIGTERM before its test: report calls its old test
results stale, and evaluate refuses the mid-epoch interrupted.ckpt unless told."""

import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepcovid.evaluate import IncompleteCheckpointError
from deepcovid.models.checkpoints import stopped_mid_epoch
from deepcovid.report import main as report
from deepcovid.train import SIGTERM_EXIT_CODE, train
from deepcovid.utils.config import compose_config
from tests.conftest import TINY_RUN, tiny_overrides
from tests.test_evaluate import run_eval


def statuses(run_dir: Path, output: Path) -> dict[str, str]:
    report([str(run_dir), "--output", str(output), "--resamples", "20", "--no-wandb"])
    return pd.read_csv(output / "comparison.csv").groupby("run_dir")["status"].first().to_dict()


@pytest.mark.slow
def test_resumed_run_stopped_before_its_test(
    tiny_run: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)  # 2 epochs, tested
    assert statuses(run, tmp_path / "before") == {str(run): "complete"}
    for name in ("last", "best-epoch*"):
        (epoch_end,) = (run / "checkpoints").glob(f"{name}.ckpt")
        assert not stopped_mid_epoch(torch.load(epoch_end, weights_only=True))

    overrides = tiny_overrides(
        covidx5k_shared,
        run,
        *TINY_RUN,
        "trainer.max_epochs=3",
        "ckpt_path=last",
        "+callbacks.sigterm._target_=tests.integration.test_kill_resume.SignalAtStep",
        "+callbacks.sigterm.step=4",  # the first step after the resume
        f"+callbacks.sigterm.signum={int(signal.SIGTERM)}",
    )
    with pytest.raises(SystemExit) as stop:
        train(compose_config("train", overrides, str(run)))
    assert stop.value.code == SIGTERM_EXIT_CODE
    assert statuses(run, tmp_path / "after") == {str(run): "stale"}
    markdown = (tmp_path / "after" / "comparison.md").read_text()
    assert "interrupted.ckpt" in markdown and "| stale |" in markdown

    interrupted = run / "checkpoints" / "interrupted.ckpt"
    with pytest.raises(IncompleteCheckpointError, match="allow_incomplete=true") as refused:
        run_eval(interrupted, covidx5k_shared, tmp_path / "refused")
    assert str(interrupted) in str(refused.value) and "mid-epoch" in str(refused.value)
    assert not (tmp_path / "refused" / "metrics").exists()

    evaluated = tmp_path / "evaluated"
    evaluation = run_eval(interrupted, covidx5k_shared, evaluated, "allow_incomplete=true")
    assert "an interrupted checkpoint, saved mid-epoch" in evaluation.mode
    assert "an interrupted checkpoint" in (evaluated / "report.md").read_text()
    assert statuses(evaluated, tmp_path / "of_interrupted") == {str(evaluated): "interrupted"}

    # train=false test=true refuses it too, before testing anything
    tested = tmp_path / "tested"
    overrides = tiny_overrides(covidx5k_shared, tested, "train=false", f"ckpt_path={interrupted}")
    with pytest.raises(ValueError, match="saved mid-epoch"):
        train(compose_config("train", overrides, str(tested)))
    assert not (tested / "metrics").exists()
