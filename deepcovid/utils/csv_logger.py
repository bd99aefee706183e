"""A CSV logger that keeps the metric history of a resumed run.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when its folder is used again, so resuming
with ``ckpt_path=last`` in the same run folder kept only the epochs after the resume.
:class:`HistoryCSVLogger` appends instead: each row carries the ``attempt`` that logged it
(1, 2, … for each start in the folder), and the rows are written to disk at every checkpoint,
so a killed run's file holds everything up to the checkpoint it resumes from. Rows of a
partial epoch after that checkpoint that did reach the file (a flush every
``flush_logs_every_n_steps``) stay under their attempt: keep the last attempt's row per step.
"""

from __future__ import annotations

import csv
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

ATTEMPT = "attempt"


class HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing ``metrics.csv`` under the next
    attempt number (rows of a file without the column count as attempt 1)."""

    def _check_log_dir_exists(self) -> None:
        self.attempt = 1
        if not self._fs.isfile(self.metrics_file_path):
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            earlier = [int(float(row.get(ATTEMPT) or 1)) for row in reader]
            self.metrics_keys = sorted(reader.fieldnames or [])
        self.attempt = max(earlier, default=0) + 1

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics({**metrics_dict, ATTEMPT: self.attempt}, step)


class HistoryCSVLogger(CSVLogger):
    """``CSVLogger`` with :class:`HistoryWriter`, saved at every checkpoint."""

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(log_dir=self.log_dir)
        return self._experiment

    def after_save_checkpoint(self, checkpoint_callback: Checkpoint) -> None:
        self.save()
