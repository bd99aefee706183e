"""A real CLI run killed with SIGKILL mid-epoch resumes with ckpt_path=last and ends exactly
where an uninterrupted run ends, with the default loader shape (2 persistent workers, augmented
training images); SIGTERM saves a checkpoint and exits with status 143."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch

from deepcovid.train import SIGTERM_EXIT_CODE, train
from deepcovid.utils.config import compose_config
from deepcovid.utils.csv_logger import ATTEMPT
from tests.conftest import REPO, tiny_overrides

STEPS_PER_EPOCH = 4
KILL_AT_STEP = 6  # epoch 1, batch 2: mid-epoch, after last.ckpt of epoch 0 was written


class SignalAtStep(L.Callback):
    """Send this process ``signum`` (SIGKILL by default: no handler can run) when training
    reaches ``step``."""

    def __init__(self, step: int, signum: int = signal.SIGKILL) -> None:
        self.step = step
        self.signum = signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def cli(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    overrides = tiny_overrides(
        root,
        out,
        "trainer.max_epochs=3",
        f"trainer.limit_train_batches={STEPS_PER_EPOCH}",
        "trainer.deterministic=true",
        "data.val_fraction=0.25",
        "data.num_workers=2",
        "data.persistent_workers=true",
        "print_config=false",
        f"hydra.run.dir={out}",
        *extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "deepcovid.train", *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )


def final_test_metrics(run: Path) -> pd.Series:
    """The test-stage row of a run's CSV log (without the attempt that logged it)."""
    metrics = pd.read_csv(run / "csv" / "metrics.csv").drop(columns=ATTEMPT)
    return metrics.dropna(subset=["test/auroc"]).iloc[-1].dropna()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    covidx5k_shared: Path, tmp_path: Path
) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = cli(covidx5k_shared, whole)
    assert done.returncode == 0, done.stderr[-3000:]

    kill = [
        "+callbacks.sigkill._target_=tests.integration.test_kill_resume.SignalAtStep",
        f"+callbacks.sigkill.step={KILL_AT_STEP}",
    ]
    crashed = cli(covidx5k_shared, killed, *kill)
    assert crashed.returncode == -signal.SIGKILL
    last = torch.load(killed / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (0, STEPS_PER_EPOCH)  # killed in epoch 1
    assert not (killed / "predictions").exists()

    resumed = cli(covidx5k_shared, killed, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = pd.read_csv(killed / "csv" / "metrics.csv").dropna(subset=["val/auroc"])
    assert history["epoch"].tolist() == [0, 1, 2]  # epoch 0: saved with its checkpoint
    assert history[ATTEMPT].tolist() == [1, 2, 2]

    final = {
        run: torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        for run in (whole, killed)
    }
    assert final[killed]["global_step"] == final[whole]["global_step"] == 3 * STEPS_PER_EPOCH
    for name, weight in final[whole]["state_dict"].items():
        assert torch.equal(weight, final[killed]["state_dict"][name]), name
    expected = pd.read_csv(whole / "predictions" / "test.csv")
    resumed_predictions = pd.read_csv(killed / "predictions" / "test.csv")
    pd.testing.assert_frame_equal(resumed_predictions, expected, check_exact=True)  # bit for bit
    pd.testing.assert_series_equal(
        final_test_metrics(killed), final_test_metrics(whole), check_names=False
    )


def test_sigterm_saves_a_checkpoint_and_exits_with_143(covidx5k_shared: Path, tmp_path: Path):
    overrides = tiny_overrides(
        covidx5k_shared,
        tmp_path,
        "+callbacks.sigterm._target_=tests.integration.test_kill_resume.SignalAtStep",
        "+callbacks.sigterm.step=1",
        f"+callbacks.sigterm.signum={int(signal.SIGTERM)}",
    )
    with pytest.raises(SystemExit) as stop:
        train(compose_config("train", overrides, output_dir=str(tmp_path)))
    assert stop.value.code == SIGTERM_EXIT_CODE == 143
    saved = torch.load(tmp_path / "checkpoints" / "interrupted.ckpt", weights_only=True)
    assert saved["global_step"] == 2  # the batch in flight finished, then the run stopped
    assert not (tmp_path / "predictions").exists()
