"""Fit a classifier, then test its best checkpoint: what ``python -m deepcovid.train`` does."""

from __future__ import annotations

import logging
import math
import signal
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from deepcovid.callbacks.safety import exception_checkpoint
from deepcovid.checkpoint_io import AtomicCheckpointIO
from deepcovid.data.integrity import check_before_fit
from deepcovid.tracking import finish_loggers, log_config, log_summary
from deepcovid.utils.console import print_config_tree, silence_known_warnings
from deepcovid.utils.instantiate import instantiate_callbacks, instantiate_loggers

log = logging.getLogger(__name__)
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a job ended by SIGTERM


def scalar_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The trainer's latest logged metrics as plain floats."""
    return {key: float(value) for key, value in trainer.callback_metrics.items()}


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint of this run by its monitored metric (the ModelCheckpoint that has a
    ``monitor``), or None when none was saved (e.g. fast_dev_run)."""
    paths = [c.best_model_path for c in trainer.checkpoint_callbacks if c.monitor]
    return next((p for p in paths if p), None)


def check_data(cfg: DictConfig, datamodule: L.LightningDataModule) -> None:
    """The fast data check before fitting (``cfg.check_data``): leaks stop the run."""
    settings = cfg.get("check_data")
    if not settings or not settings.enabled or not cfg.train:
        return
    datamodule.setup("fit")
    check_before_fit(
        datamodule.table,
        Path(cfg.paths.output_dir) / "data_check.json",
        decode=settings.decode,
        max_distance=settings.max_distance,
        on_leak=settings.on_leak,
    )


def train(cfg: DictConfig) -> dict[str, float]:
    """Seed, fit, test the best checkpoint; return the metrics logged last."""
    silence_known_warnings()
    if cfg.get("print_config"):
        print_config_tree(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule: L.LightningDataModule = hydra.utils.instantiate(cfg.data)
    model: L.LightningModule = hydra.utils.instantiate(cfg.model)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    log_config(loggers, cfg)
    metrics: dict[str, float] = {}
    try:
        check_data(cfg, datamodule)
        if cfg.train:
            trainer.fit(
                model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True
            )
            metrics |= scalar_metrics(trainer)
        if cfg.test:
            checkpoint = best_checkpoint(trainer) if cfg.train else cfg.get("ckpt_path")
            if checkpoint is None:
                log.warning("no checkpoint was saved: testing the current weights")
            trainer.test(model, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
            metrics |= scalar_metrics(trainer)
        skipped = {"data/skipped_files": float(len(getattr(datamodule, "skipped", {})))}
        for logger in loggers:
            logger.log_metrics(skipped)
            logger.save()
        metrics |= skipped
        log_summary(loggers, metrics)
    except SIGTERMException as stop:
        log.warning(
            "stopped by SIGTERM; weights of the last step saved to %s. Resume exactly from the "
            "last epoch end with ckpt_path=last (same hydra.run.dir)",
            exception_checkpoint(trainer) or "nowhere (callbacks.checkpoint_on_interrupt is off)",
        )
        raise SystemExit(SIGTERM_EXIT_CODE) from stop
    finally:
        finish_loggers(loggers)
    log.info("final metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    return metrics


def optimized_metric(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """The value a hyper-parameter sweeper maximises (``cfg.optimized_metric``), if set."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    value = metrics.get(name, math.nan)
    return value
