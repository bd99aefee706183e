"""Turn config groups into Lightning objects (callbacks, loggers)."""

from __future__ import annotations

import logging

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a config group that has a ``_target_`` (skips nulls)."""
    if not group:
        return []
    return [
        hydra.utils.instantiate(entry)
        for entry in group.values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]


def instantiate_callbacks(group: DictConfig | None) -> list[Callback]:
    """The callbacks of ``cfg.callbacks``."""
    return instantiate_group(group)


def instantiate_loggers(group: DictConfig | None) -> list[Logger]:
    """The loggers of ``cfg.logger``, minus any that resolved to None (e.g. W&B disabled)."""
    return [logger for logger in instantiate_group(group) if logger is not None]
