"""Weights & Biases: online with credentials, offline without, and runs closed between jobs."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path

from lightning.pytorch.loggers import Logger, WandbLogger

log = logging.getLogger(__name__)
WANDB_MODES = ("auto", "online", "offline", "disabled")


def has_wandb_credentials() -> bool:
    """Whether an API key is available (``WANDB_API_KEY`` or a ``~/.netrc`` login)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` becomes ``WANDB_MODE`` if set, else online with credentials, else offline."""
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.wandb.mode={mode!r}; choose one of {list(WANDB_MODES)}")
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode in ("online", "offline", "disabled"):
        return env_mode
    return "online" if has_wandb_credentials() else "offline"


def wandb_logger(
    mode: str = "auto", log_model: bool | str = True, save_dir: str = ".", **kwargs
) -> WandbLogger | None:
    """A WandbLogger in the resolved mode; None when disabled.

    Offline, Lightning refuses ``log_model``: checkpoints then stay in the run directory.
    """
    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        log.info("W&B logging disabled")
        return None
    offline = mode == "offline"
    if offline and log_model:
        log.info("W&B offline: checkpoints are kept locally, not uploaded as artifacts")
        log_model = False
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(offline=offline, log_model=log_model, save_dir=save_dir, **kwargs)
    if offline:
        log.warning(
            "W&B offline (no API key): the run is stored under %s/wandb; upload it later with "
            "`wandb sync %s/wandb/offline-run-*`",
            save_dir,
            save_dir,
        )
    return logger


def finish_loggers(loggers: list[Logger]) -> None:
    """Close W&B runs so the next job of a multirun starts a fresh one."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
