"""ROC and precision-recall curves of each validation epoch, from predictions gathered from all
DDP ranks: W&B line plots (with their tables) when a WandbLogger is attached, else PNG files
(also logged to an MLflow run as artifacts under ``plots/val/``).

The scalars (val/auroc, val/average_precision, val/sensitivity, val/specificity,
val/accuracy) are logged by the classifier itself (:func:`deepcovid.metrics.epoch.epoch_metrics`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from deepcovid.metrics.discrimination import Curve, precision_recall_curve, roc_curve
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.results import figures
from deepcovid.utils.files import save_figure
from deepcovid.utils.mlflow_logger import log_files

log = logging.getLogger(__name__)
# name: (curve function, x column, y column, figure)
CURVES = {
    "roc": (roc_curve, "fpr", "tpr", figures.roc_figure),
    "pr": (precision_recall_curve, "recall", "precision", figures.pr_figure),
}


def log_to_wandb(logger: WandbLogger, curves: dict[str, Curve], step: int) -> None:
    """One W&B line plot per curve, keyed ``val/<name>_curve``, backed by a table."""
    import wandb

    charts = {}
    for name, curve in curves.items():
        _, x, y, _ = CURVES[name]
        data = wandb.Table(columns=[x, y, "threshold"])
        # PR curves have one threshold fewer than points (the last point has none), and the
        # first ROC threshold is +inf: both are left empty
        thresholds = [float(t) if math.isfinite(t) else None for t in curve.thresholds]
        thresholds += [None] * (len(curve.x) - len(thresholds))
        for row in zip(curve.x, curve.y, thresholds, strict=True):
            data.add_data(float(row[0]), float(row[1]), row[2])
        charts[f"val/{name}_curve"] = wandb.plot.line(data, x, y, title=f"val {name} curve")
    logger.experiment.log({**charts, "trainer/global_step": step})


class ValidationCurves(L.Callback):
    """Logs val ROC and PR curves every ``every_n_epochs`` validation epochs (rank 0)."""

    def __init__(self, output_dir: str, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs={every_n_epochs}: must be at least 1")
        self.output_dir = Path(output_dir)
        self.every_n_epochs = every_n_epochs
        self.written: list[Path] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        predictions = pl_module.gathered("val")  # collective: every rank takes part
        if not trainer.is_global_zero:
            return
        try:
            curves = {
                name: make(predictions.label, predictions.prob_covid)
                for name, (make, *_) in CURVES.items()
            }
        except UndefinedMetric as reason:
            log.warning("epoch %d: no val curves: %s", trainer.current_epoch, reason)
            return
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        for logger in wandb_loggers:
            log_to_wandb(logger, curves, trainer.global_step)
        if wandb_loggers:
            return
        for name, curve in curves.items():
            figure = CURVES[name][3]({f"epoch {trainer.current_epoch}": curve})
            path = (
                self.output_dir / "plots" / "val" / f"{name}-epoch{trainer.current_epoch:03d}.png"
            )
            self.written.append(save_figure(figure, path))
            log_files(trainer.loggers, [path], "plots/val")
