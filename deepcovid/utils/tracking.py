"""Weights & Biases: online with credentials, offline without, and runs closed between jobs;
MLflow (``logger=mlflow``): a local store in the run folder unless a tracking URI is given."""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import Logger, MLFlowLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from deepcovid.utils.choices import checked_choice, choices
from deepcovid.utils.mlflow_logger import ALLOW_FILE_STORE, log_files, log_scalars

log = logging.getLogger(__name__)
WANDB_MODES = (
    "auto",
    "online",
    "offline",
    "disabled",
)  # logger.wandb.mode (conf/logger/wandb.yaml)
WandbMode = choices("WandbMode", WANDB_MODES)


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
    mode = checked_choice("logger.wandb.mode", mode, WandbMode)
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode in WANDB_MODES and env_mode != "auto":
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
    container = (
        OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # typed choices as names
        if isinstance(cfg, DictConfig)
        else cfg
    )
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


def mlflow_logger(
    tracking_uri: str | None = None,
    save_dir: str = "./mlruns",
    experiment_name: str = "deepcovid",
    run_name: str | None = None,
    tags: Iterable[str] | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MLFlowLogger:
    """An MLFlowLogger writing to ``tracking_uri``, else to the local store ``file:<save_dir>``
    (see :mod:`deepcovid.utils.mlflow_logger` for why ``MLFLOW_ALLOW_FILE_STORE`` is set then).

    ``run_name`` defaults to the Hydra job folder (and a multirun's sweep folder becomes the
    tag ``group``); ``tags`` may be a list (each becomes a tag set to "true") or a mapping."""
    try:
        import mlflow  # noqa: F401 - only to say how to install it
    except ImportError as error:
        raise ImportError(
            "logger=mlflow needs MLflow: pip install 'deepcovid[mlflow]' (or mlflow-skinny)"
        ) from error
    uri = tracking_uri or f"file:{Path(save_dir).resolve()}"
    if uri.startswith("file:") and ALLOW_FILE_STORE not in os.environ:
        os.environ[ALLOW_FILE_STORE] = "true"
    group, name = hydra_run_identity()
    named = dict(tags) if isinstance(tags, Mapping) else {tag: "true" for tag in tags or ()}
    if group:
        named.setdefault("group", group)
    logger = MLFlowLogger(
        experiment_name=experiment_name,
        run_name=run_name or name,
        tracking_uri=uri,
        tags=named or None,
        save_dir=save_dir,
        **kwargs,
    )
    log.info("MLflow run %s in %s", logger.run_id, uri)
    return logger


def log_files_run(
    tracking_uri: str, run_name: str, paths: Iterable[Path], experiment_name: str = "deepcovid"
) -> str:
    """A new MLflow run ``run_name`` in ``tracking_uri`` holding ``paths`` as artifacts (for
    commands without a Lightning trainer, e.g. ``deepcovid.report``); returns its id."""
    logger = mlflow_logger(tracking_uri, experiment_name=experiment_name, run_name=run_name)
    log_files([logger], paths, "")
    logger.finalize("success")
    return logger.run_id


def log_config(loggers: list[Logger], cfg: DictConfig) -> None:
    """Record the resolved run config (without Hydra's own node) with every logger."""
    for logger in loggers:
        logger.log_hyperparams(flatten_config(cfg))


def log_summary(loggers: list[Logger], values: dict[str, Any]) -> None:
    """Put values in the W&B run summary (what the runs table shows), and the numeric ones in
    an MLflow run as metrics."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(values)
        if isinstance(logger, MLFlowLogger):
            log_scalars(logger, scalars(values))


def scalars(values: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of ``values`` (None left out), for loggers that take numbers only
    (CSV, TensorBoard)."""
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


def log_evaluation(
    loggers: list[Logger], split: str, values: dict[str, Any], written: dict[str, Path]
) -> None:
    """Send an evaluation's flat values (``Evaluation.scalars()``) to every logger, once, as
    ``<split>/<key>``: W&B gets the summary keys and the figures,
    MLflow the scalar keys and every written file (``evaluation/<split>/``), the others the
    scalar keys."""
    summary = {f"{split}/{key}": value for key, value in values.items()}
    figures = {
        kind.removeprefix("plot:"): p for kind, p in written.items() if kind.startswith("plot:")
    }
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            log_scalars(logger, scalars(summary))
            log_files([logger], written.values(), f"evaluation/{split}")
            continue
        if not isinstance(logger, WandbLogger):
            logger.log_metrics(scalars(summary))
            logger.save()
            continue
        logger.experiment.summary.update(summary)
        if figures:
            logger.log_image(
                key=f"{split}/plots",
                images=[str(path) for path in figures.values()],
                caption=list(figures),
            )
