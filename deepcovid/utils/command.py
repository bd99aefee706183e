"""The start-up every Hydra command shares (train, evaluate, audit): known-harmless warnings
silenced, the config printed (``print_config``), everything seeded (``seed``), and the loggers
of ``cfg.logger`` closed however the command ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig

from deepcovid.utils.console import print_config_tree, silence_known_warnings
from deepcovid.utils.instantiate import instantiate_loggers


def start(cfg: DictConfig) -> None:
    """Silence the known-harmless warnings, print the config, seed every generator."""
    silence_known_warnings()
    if cfg.get("print_config"):
        print_config_tree(cfg)
    L.seed_everything(cfg.seed, workers=True)


def finish_loggers(loggers: list[Logger]) -> None:
    """Close W&B runs so the next job of a multirun starts a fresh one."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()


@contextmanager
def command_loggers(cfg: DictConfig) -> Iterator[list[Logger]]:
    """The loggers of ``cfg.logger``, finished when the block ends, by an error too."""
    loggers = instantiate_loggers(cfg.get("logger"))
    try:
        yield loggers
    finally:
        finish_loggers(loggers)
