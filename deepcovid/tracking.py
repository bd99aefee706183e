"""Weights & Biases: online with credentials, offline without, and runs closed between jobs."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

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


def hydra_run_identity() -> tuple[str | None, str | None]:
    """(group, name) for a W&B run: in a multirun the sweep folder groups the jobs and each
    job is named after its own folder; in a single run only the name is set."""
    if not HydraConfig.initialized():
        return None, None
    hydra_cfg = HydraConfig.get()
    name = Path(hydra_cfg.runtime.output_dir).name
    group = Path(hydra_cfg.sweep.dir).name if hydra_cfg.mode == RunMode.MULTIRUN else None
    return group, name


def flatten_config(cfg: DictConfig | dict, prefix: str = "") -> dict[str, Any]:
    """A nested config as one level of dotted keys (``model.backbone: resnet18``)."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    flat: dict[str, Any] = {}
    for key, value in container.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten_config(value, f"{dotted}.")
        else:
            flat[dotted] = value
    return flat


def wandb_logger(
    mode: str = "auto",
    log_model: bool | str = True,
    save_dir: str = ".",
    group: str | None = None,
    name: str | None = None,
    **kwargs,
) -> WandbLogger | None:
    """A WandbLogger in the resolved mode; None when disabled.

    ``group`` and ``name`` default to the Hydra sweep and job folders. Offline, Lightning
    refuses ``log_model``: checkpoints then stay in the run directory. Online, the run is
    started here, and if W&B cannot be reached the run goes on offline instead of failing.
    """
    mode = resolve_wandb_mode(mode)
    auto_group, auto_name = hydra_run_identity()
    group, name = group or auto_group, name or auto_name
    if mode == "disabled":
        log.info("W&B logging disabled")
        return None
    offline = mode == "offline"
    if offline and log_model:
        log.info("W&B offline: checkpoints are kept locally, not uploaded as artifacts")
        log_model = False
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    # mode= goes to wandb.init explicitly: Lightning's offline flag only sets WANDB_MODE in the
    # environment, which would leak into later (online) jobs of an in-process multirun.
    logger = WandbLogger(
        offline=offline,
        mode=mode,
        log_model=log_model,
        save_dir=save_dir,
        group=group,
        name=name,
        **kwargs,
    )
    if offline:
        log.warning(
            "W&B offline: the run is stored under %s/wandb; upload it later with "
            "`wandb sync %s/wandb/offline-run-*`",
            save_dir,
            save_dir,
        )
        return logger
    try:
        logger.experiment  # noqa: B018 - starts the run now, not in the middle of training
    except Exception as error:  # wandb raises many kinds: network, auth, timeouts
        log.warning("W&B unreachable (%s: %s): continuing offline", type(error).__name__, error)
        return wandb_logger("offline", False, save_dir, group, name, **kwargs)
    return logger


def log_config(loggers: list[Logger], cfg: DictConfig) -> None:
    """Record the resolved run config (without Hydra's own node) with every logger."""
    for logger in loggers:
        logger.log_hyperparams(flatten_config(cfg))


def log_summary(loggers: list[Logger], metrics: dict[str, Any]) -> None:
    """Put final results in the W&B run summary (what the runs table shows)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(metrics)


def evaluation_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The final evaluation as flat W&B summary keys: ``test/auroc``, ``test/auroc_ci``, and per
    operating point ``test/<rule>/{threshold,sensitivity,sensitivity_ci,specificity,…}``
    (fixed cut-offs are named ``fixed@<threshold>``)."""
    split = metrics["split"]
    summary = {
        f"{split}/{key}": metrics[key]
        for key in ("auroc", "auroc_ci", "average_precision", "average_precision_ci", "ece")
    }
    for point in metrics["operating_points"]:
        name = point["name"] if point["chosen_on"] else f"fixed@{point['threshold']:g}"
        for key in (
            "threshold",
            "sensitivity",
            "sensitivity_ci",
            "specificity",
            "specificity_ci",
            "tp",
            "fp",
            "tn",
            "fn",
        ):
            summary[f"{split}/{name}/{key}"] = point[key]
    summary[f"{split}/skipped_files"] = metrics.get("skipped_files", 0)
    return summary


def log_evaluation(loggers: list[Logger], metrics: dict[str, Any], plots_dir: Path) -> None:
    """Send the final evaluation to W&B: summary keys and the figures of ``plots_dir``."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        logger.experiment.summary.update(evaluation_summary(metrics))
        figures = sorted(plots_dir.glob("*.png"))
        if figures:
            logger.log_image(
                key=f"{metrics['split']}/plots",
                images=[str(f) for f in figures],
                caption=[f.stem for f in figures],
            )


def finish_loggers(loggers: list[Logger]) -> None:
    """Close W&B runs so the next job of a multirun starts a fresh one."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()
