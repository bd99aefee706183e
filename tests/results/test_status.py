"""Whether a run's results still describe its model: complete, stale or interrupted."""

import os
from pathlib import Path

import torch

from deepcovid.results.status import COMPLETE, INTERRUPTED, STALE, run_status


def loop_state(started: int, processed: int) -> dict:
    progress = {"total": {"started": started, "processed": processed}}
    return {"loops": {"fit_loop": {"epoch_progress": progress}}}


def evaluated_run(tmp_path: Path, checkpoint: dict, age: int) -> tuple[Path, Path]:
    """A run folder whose ``metrics/test.json`` is ``age`` seconds newer than its checkpoint."""
    (tmp_path / "metrics").mkdir()
    (tmp_path / "checkpoints").mkdir()
    results = tmp_path / "metrics" / "test.json"
    results.write_text("{}")
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    torch.save(checkpoint, ckpt)
    os.utime(ckpt, (1_000_000, 1_000_000))
    os.utime(results, (1_000_000 + age, 1_000_000 + age))
    return tmp_path, ckpt


def test_results_written_after_the_last_checkpoint_are_complete(tmp_path: Path) -> None:
    run_dir, ckpt = evaluated_run(tmp_path, loop_state(3, 3), age=10)
    assert run_status(run_dir, str(ckpt), "test").state == COMPLETE
    assert run_status(run_dir, None, "test").state == COMPLETE


def test_a_checkpoint_newer_than_the_results_makes_them_stale(tmp_path: Path) -> None:
    run_dir, ckpt = evaluated_run(tmp_path, loop_state(3, 3), age=-10)
    status = run_status(run_dir, None, "test")
    assert status.state == STALE and str(ckpt) in status.reason
    assert "python -m deepcovid.evaluate" in status.reason


def test_a_checkpoint_saved_mid_epoch_is_interrupted(tmp_path: Path) -> None:
    run_dir, ckpt = evaluated_run(tmp_path, loop_state(4, 3), age=10)
    status = run_status(run_dir, str(ckpt), "test")
    assert status.state == INTERRUPTED and "saved mid-epoch" in status.reason


def test_a_damaged_or_missing_checkpoint_is_not_judged(tmp_path: Path) -> None:
    run_dir, ckpt = evaluated_run(tmp_path, loop_state(3, 3), age=10)
    ckpt.write_bytes(b"not a checkpoint")
    os.utime(ckpt, (1_000_000, 1_000_000))
    assert run_status(run_dir, str(ckpt), "test").state == COMPLETE
    assert run_status(run_dir, str(tmp_path / "gone.ckpt"), "test").state == COMPLETE
