"""Write each test run's per-image predictions to ``predictions/<stage>.csv``."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from deepcovid.predictions import predictions_frame, write_csv_atomic

log = logging.getLogger(__name__)


class PredictionWriter(L.Callback):
    """After testing, write ``path,label,prob_covid[,patient_id,source,finding]`` (rank 0)."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.written: Path | None = None

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        predictions = pl_module.gathered("test")  # collective: every rank takes part
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        frame = predictions_frame(predictions, trainer.datamodule.table)
        self.written = write_csv_atomic(frame, self.output_dir / "predictions" / "test.csv")
        log.info("wrote %d test predictions to %s", len(frame), self.written)
