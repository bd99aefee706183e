"""At the end of a test, write the full evaluation (:mod:`deepcovid.results.evaluation`): the
final test of ``python -m deepcovid.train`` and ``python -m deepcovid.evaluate`` both run it.

Operating-point thresholds are chosen on the validation predictions *of the tested weights*,
which every checkpoint carries in its record (:mod:`deepcovid.models.record`), unless the
caller gives other ones (a new site's val split, for site recalibration).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import pandas as pd

from deepcovid.callbacks.failures import write_failures
from deepcovid.explain.explainers import Explainer
from deepcovid.metrics.predictions import predictions_frame
from deepcovid.metrics.summary import Evaluation, MetricSettings, ModelInfo
from deepcovid.models.classifier import CovidClassifier
from deepcovid.results.checklist_fill import write_checklist
from deepcovid.results.evaluation import (
    ValPredictions,
    evaluate_predictions,
    write_evaluation,
)
from deepcovid.results.failures import FailureSettings
from deepcovid.results.table1 import write_table_one
from deepcovid.utils.mlflow_logger import log_files
from deepcovid.utils.tracking import log_evaluation

log = logging.getLogger(__name__)
TRAINING_VAL = "the training run's val split"  # where thresholds come from, in words


def absolute_paths(frame: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Recorded (root-relative) paths as paths under ``root``."""
    return frame.assign(path=[str(Path(root) / p) for p in frame["path"]])


def tested_weights_val(
    trainer: L.Trainer, module: CovidClassifier, source: str = TRAINING_VAL, chosen_on: str = "val"
) -> ValPredictions:
    """The val predictions of the weights under test: from the record of the tested checkpoint,
    or those of the current weights when they were validated at this very step."""
    root = trainer.datamodule.root
    if trainer.ckpt_path is not None:
        record = module.record
        if record is None or record.val_predictions is None:
            return ValPredictions(
                None, source, chosen_on, f"{trainer.ckpt_path} holds no val predictions"
            )
        return ValPredictions(absolute_paths(record.val_predictions, root), source, chosen_on)
    latest = module.latest_val
    if latest is not None and latest[0] == trainer.global_step:
        return ValPredictions(latest[2], source, chosen_on)
    return ValPredictions(None, source, chosen_on, "the tested weights were never validated")


class EvaluationWriter(L.Callback):
    """Writes the evaluation of the test split at test end (rank 0) and logs it."""

    def __init__(
        self,
        output_dir: str | Path,
        settings: MetricSettings | None = None,
        val_predictions: ValPredictions | None = None,
        checkpoint: str | None = None,
        mode: str = "the training data",
        failures: FailureSettings | None = None,
        explainer: Explainer | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.failures, self.explainer = failures, explainer  # failure cases: None, none
        self.settings = settings or MetricSettings()
        self.val_predictions = val_predictions
        self.checkpoint = checkpoint
        self.mode = mode
        self.evaluation: Evaluation | None = None

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: CovidClassifier) -> None:
        predictions = pl_module.gathered("test")  # collective: every rank takes part
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        val_predictions = self.val_predictions or tested_weights_val(trainer, pl_module)
        test = predictions_frame(predictions, datamodule.table)
        checkpoint = self.checkpoint or trainer.ckpt_path
        record = pl_module.record
        data = datamodule.record() if record is None else record.data
        combination = None if record is None else record.combination
        self.evaluation = evaluate_predictions(
            test,
            val_predictions,
            self.settings,
            float(pl_module.hparams.threshold),
            ModelInfo(
                pl_module.hparams.backbone if record is None else record.backbone,
                None if checkpoint is None else str(checkpoint),
                pl_module.pretrained_on,
                **data.split.run_identity() if data else {},
                ensemble=None if combination is None else combination.describe(),
            ),
            precision="32-true"
            if pl_module.hparams.full_precision_eval
            else str(trainer.precision),
            skipped=datamodule.skipped,
            split=datamodule.tested_split,
            data=data,
            mode=self.mode,
        )
        written = write_evaluation(self.evaluation, test, val_predictions.frame, self.output_dir)
        if self.failures is not None and self.failures.count:
            written |= write_failures(
                pl_module, datamodule, self.evaluation, test, self.failures, self.explainer,
                self.output_dir,
            )  # fmt: skip
        model = self.evaluation.model
        written |= write_table_one(datamodule.table, self.output_dir, model.fold, model.num_folds)
        log_evaluation(trainer.loggers, self.evaluation.split, self.evaluation.scalars(), written)

    def on_test_end(self, trainer: L.Trainer, pl_module: CovidClassifier) -> None:
        """The checklist last, once the other test-end callbacks (the audit) have written."""
        if trainer.is_global_zero and self.evaluation is not None:
            split = self.evaluation.split
            checklist = write_checklist([self.output_dir], split=split)
            log_files(trainer.loggers, [checklist], f"evaluation/{split}")
