"""After the final test of a training run, write the full evaluation (metrics/test.json,
plots/, report.md) with the code of ``python -m deepcovid.evaluate``.

Operating-point thresholds are chosen on the validation predictions *of the tested weights*:
each validation epoch's gathered predictions are cached and stored in every checkpoint saved
after that validation (key ``val_predictions``), and read back from the checkpoint under test.
Testing a checkpoint without them (or the current weights of an unvalidated model) leaves the
val-chosen operating points undefined, with the reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch

from deepcovid.evaluation import write_evaluation
from deepcovid.metrics.summary import MetricSettings
from deepcovid.predictions import predictions_frame
from deepcovid.tracking import log_evaluation

log = logging.getLogger(__name__)
CHECKPOINT_KEY = "val_predictions"


def frame_to_checkpoint(frame: pd.DataFrame, global_step: int) -> dict[str, Any]:
    """A val predictions frame as checkpoint content (tensors, strings: ``weights_only``-safe)."""
    return {
        "global_step": global_step,
        "path": [str(p) for p in frame["path"]],
        "label": torch.tensor(frame["label"].to_numpy(), dtype=torch.long),
        "prob_covid": torch.tensor(frame["prob_covid"].to_numpy(), dtype=torch.float64),
    }


def frame_from_checkpoint(stored: dict[str, Any]) -> pd.DataFrame:
    """The inverse of :func:`frame_to_checkpoint`."""
    return pd.DataFrame(
        {
            "path": stored["path"],
            "label": stored["label"].numpy(),
            "prob_covid": stored["prob_covid"].numpy(),
        }
    )


class EvaluationWriter(L.Callback):
    """Writes the evaluation of the test split at test end (rank 0); see the module doc."""

    def __init__(self, output_dir: str, settings: MetricSettings | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.settings = settings or MetricSettings()
        self.latest_val: tuple[int, pd.DataFrame] | None = None
        self.metrics: dict[str, Any] | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.datamodule is None:
            return
        predictions = pl_module.gathered("val")  # collective: every rank takes part
        frame = predictions_frame(predictions, trainer.datamodule.table)
        self.latest_val = (trainer.global_step, frame)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if self.latest_val is not None and self.latest_val[0] == trainer.global_step:
            checkpoint[CHECKPOINT_KEY] = frame_to_checkpoint(
                self.latest_val[1], trainer.global_step
            )

    def tested_val_predictions(self, trainer: L.Trainer) -> tuple[pd.DataFrame | None, str]:
        """The val predictions of the weights under test, or None and why there are none."""
        path = trainer.ckpt_path
        if path is None:
            if self.latest_val is not None and self.latest_val[0] == trainer.global_step:
                return self.latest_val[1], ""
            return None, "the tested weights were never validated"
        stored = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if CHECKPOINT_KEY not in stored:
            return None, (
                f"{path} holds no validation predictions; run `python -m deepcovid.evaluate "
                f"ckpt_path={path} data.root=…` to choose thresholds on val"
            )
        return frame_from_checkpoint(stored[CHECKPOINT_KEY]), ""

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        predictions = pl_module.gathered("test")  # collective: every rank takes part
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        val, reason = self.tested_val_predictions(trainer)
        self.metrics = write_evaluation(
            predictions_frame(predictions, trainer.datamodule.table),
            val,
            self.settings,
            float(pl_module.hparams.threshold),
            self.output_dir,
            model={"backbone": pl_module.hparams.backbone, "checkpoint": trainer.ckpt_path},
            val_reason=reason,
            skipped=getattr(trainer.datamodule, "skipped", None),
        )
        log_evaluation(trainer.loggers, self.metrics, Path(self.output_dir) / "plots")
