"""Heatmap panels at the end of validation (every N epochs) and of testing.

On rank 0 the callback picks a panel (:mod:`deepcovid.explain.panel`) from the gathered
predictions, computes heatmaps with the configured explainer (``explainer=occlusion|gradcam``),
writes one overlay per image and a grid to ``<output_dir>/heatmaps/val/epochNNN/`` (or
``heatmaps/test/``) and logs the overlays to W&B when a W&B logger is attached (and the overlays
and the grid to an MLflow run as artifacts, under the same folder names).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger

from deepcovid.explain.explainers import Explainer
from deepcovid.explain.overlay import (
    grid_figure,
    heatmap_title,
    overlay_figure,
    to_display,
)
from deepcovid.explain.panel import fixed_sample, select_panel
from deepcovid.metrics.predictions import Predictions
from deepcovid.utils.files import save_figure
from deepcovid.utils.mlflow_logger import log_files

log = logging.getLogger(__name__)


class HeatmapLogger(L.Callback):
    """Heatmaps of a fixed seeded sample plus the most confident TPs, FNs and FPs."""

    def __init__(
        self,
        explainer: Explainer,
        output_dir: str,
        every_n_epochs: int = 10,
        per_category: int = 2,
        num_fixed: int = 4,
        seed: int = 42,
        columns: int = 4,
        cmap: str | None = None,
        alpha: float = 0.5,
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"heatmap every_n_epochs={every_n_epochs}; expected >= 1")
        self.explainer, self.output_dir = explainer, Path(output_dir)
        self.every_n_epochs, self.per_category = every_n_epochs, per_category
        self.num_fixed, self.seed = num_fixed, seed
        self.columns, self.cmap, self.alpha = columns, cmap, alpha
        self.fixed: dict[str, np.ndarray] = {}
        self.written: list[Path] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        predictions = pl_module.gathered("val")  # collective: every rank takes part
        due = (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if due and not trainer.sanity_checking and trainer.is_global_zero:
            self.log_panel(trainer, pl_module, "val", predictions)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        predictions = pl_module.gathered("test")
        if trainer.is_global_zero:
            self.log_panel(trainer, pl_module, "test", predictions)

    def log_panel(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str, predictions: Predictions
    ) -> None:
        """Compute, write and log the heatmaps of ``stage``'s panel."""
        datamodule = trainer.datamodule
        if datamodule is None or len(predictions) == 0:
            log.warning("heatmaps: no datamodule or no %s predictions; nothing to draw", stage)
            return
        if stage not in self.fixed:
            self.fixed[stage] = fixed_sample(predictions, self.num_fixed, self.seed)
        threshold = float(pl_module.hparams.threshold)
        panel = select_panel(predictions, threshold, self.per_category, self.fixed[stage])
        if not panel:
            log.warning("heatmaps: the %s panel is empty; nothing to draw", stage)
            return
        rows = datamodule.table.loc[[index for index, _ in panel]]
        dataset = datamodule.dataset_of(rows, complete=True)
        images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
        heatmaps = self.explainer(pl_module, images.to(pl_module.device)).float().cpu().numpy()
        prob = dict(zip(predictions.index.tolist(), predictions.prob_covid.tolist(), strict=True))
        folder = self.output_dir / "heatmaps" / stage
        if stage == "val":
            folder = folder / f"epoch{trainer.current_epoch:03d}"
        pictures, titles, paths = [to_display(image) for image in images], [], []
        for position, ((index, category), path) in enumerate(zip(panel, rows["path"], strict=True)):
            title = heatmap_title(prob[index], threshold, rows.loc[index, "label"], Path(path).name)
            titles.append(f"{category.replace('_', ' ')}: {title}")
            figure = overlay_figure(
                pictures[position],
                heatmaps[position],
                titles[-1],
                self.cmap,
                self.alpha,
                self.explainer.colorbar_label,
            )
            paths.append(save_figure(figure, folder / f"{position:02d}-{category}.png"))
        grid = grid_figure(
            pictures, list(heatmaps), titles, self.columns, self.cmap, self.alpha,
            self.explainer.colorbar_label,
        )  # fmt: skip
        self.written += [*paths, save_figure(grid, folder / "grid.png")]
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                key = f"heatmaps/{stage}/{self.explainer.name}"
                logger.log_image(key, [str(p) for p in paths], trainer.global_step, caption=titles)
        artifact_path = folder.relative_to(self.output_dir).as_posix()
        log_files(trainer.loggers, self.written[-len(paths) - 1 :], artifact_path)
        log.info("wrote %d %s heatmaps to %s", len(paths), stage, folder)


def heatmap_logger(explainer: Explainer | None, **settings) -> HeatmapLogger | None:
    """A :class:`HeatmapLogger`, or None (no callback) when no explainer is chosen."""
    return None if explainer is None else HeatmapLogger(explainer, **settings)
