"""Turn config groups into Lightning objects (callbacks, loggers)."""

from __future__ import annotations

import logging
from typing import Any

import hydra
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def instantiate_with(config: DictConfig, **objects: Any) -> Any:
    """Instantiate ``config`` with ``objects`` passed as they are (given to ``instantiate``
    directly, Hydra would turn a dataclass into a config)."""
    return hydra.utils.instantiate(config, _partial_=True)(**objects)


def instantiate_group(group: DictConfig | None) -> list:
    """Instantiate every entry of a config group that has a ``_target_``; entries that are
    null, or whose factory returns None (switched off), are left out."""
    if not group:
        return []
    built = [
        hydra.utils.instantiate(entry)
        for entry in group.values()
        if isinstance(entry, DictConfig) and "_target_" in entry
    ]
    return [item for item in built if item is not None]


def instantiate_callbacks(group: DictConfig | None) -> list[Callback]:
    """The callbacks of ``cfg.callbacks``."""
    return instantiate_group(group)


def instantiate_loggers(group: DictConfig | None) -> list[Logger]:
    """The loggers of ``cfg.logger`` (W&B off: none)."""
    return instantiate_group(group)
