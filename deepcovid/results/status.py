"""Whether an evaluated run's results still describe its model.

- ``complete``: nothing found that contradicts them.
- ``stale``: a checkpoint of the run (``checkpoints/*.ckpt``, or the evaluated checkpoint) was
  written after ``metrics/<split>.json``: training went on after this evaluation (a resumed run
  stopped before its own test), so the results are of an earlier model.
- ``interrupted``: the evaluated checkpoint was saved mid-epoch (a fit stopped by SIGTERM or an
  error; ``evaluate`` needs ``allow_incomplete=true`` for it).

A checkpoint that is no longer there (a run folder copied without them) is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepcovid.models.checkpoints import (
    CorruptCheckpointError,
    UnsafeCheckpointError,
    read_checkpoint,
    stopped_mid_epoch,
)

COMPLETE, STALE, INTERRUPTED = "complete", "stale", "interrupted"


@dataclass(frozen=True)
class RunStatus:
    """``state`` (complete, stale or interrupted) and, unless complete, why and what to do."""

    state: str = COMPLETE
    reason: str = ""


def saved_mid_epoch(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` was saved mid-epoch (a damaged or unsafe file is not judged)."""
    try:
        return stopped_mid_epoch(read_checkpoint(checkpoint))
    except (CorruptCheckpointError, UnsafeCheckpointError):
        return False


def run_status(run_dir: Path, checkpoint: str | None, split: str) -> RunStatus:
    """The status of ``run_dir``'s ``split`` evaluation of ``checkpoint`` (see the module)."""
    results = run_dir / "metrics" / f"{split}.json"
    evaluated = Path(checkpoint) if checkpoint else None
    if evaluated is not None and evaluated.is_file() and saved_mid_epoch(evaluated):
        return RunStatus(
            INTERRUPTED,
            f"{evaluated} was saved mid-epoch by a fit that stopped early: not a finished model. "
            "Finish the fit (python -m deepcovid.train ckpt_path=last in its hydra.run.dir), "
            "or evaluate an epoch-end checkpoint.",
        )
    candidates = {*(run_dir / "checkpoints").glob("*.ckpt")}
    if evaluated is not None and evaluated.is_file():
        candidates.add(evaluated)
    evaluated_at = results.stat().st_mtime
    newer = sorted(str(c) for c in candidates if c.stat().st_mtime > evaluated_at)
    if newer:
        return RunStatus(
            STALE,
            f"{', '.join(newer)} written after {results}: training went on after this "
            "evaluation (a resumed run stopped before its test?), so these results are of an "
            "earlier model. Finish the run (ckpt_path=last in its hydra.run.dir) or evaluate "
            "its checkpoint again with python -m deepcovid.evaluate.",
        )
    return RunStatus()
