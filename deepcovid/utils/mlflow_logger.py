"""MLflow, for sites whose images and metrics must stay on premises (``logger=mlflow``).

Lightning's ``MLFlowLogger`` (made by :func:`deepcovid.utils.tracking.mlflow_logger`) takes the
metrics and the config; what W&B gets as media (the val curves, the heatmaps, the evaluation's
figures and files, the audit's figures) goes to the run as artifacts through its
``MlflowClient`` (:func:`log_files`). By default the store is a local folder in the run
directory (``file:<run dir>/mlruns``): nothing leaves the machine. MLflow 3 calls that file
store "maintenance mode" and refuses it unless :data:`ALLOW_FILE_STORE` is set, which the
factory does for ``file:`` stores; a tracking server or a database
(``tracking_uri=http://host:5000`` or ``sqlite:///path/mlflow.db``) needs nothing of the kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from lightning.pytorch.loggers import Logger, MLFlowLogger

ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
INVALID_KEY_CHARACTERS = re.compile(r"[^\w/.\- :]")  # MLflow's metric and param names


def mlflow_loggers(loggers: Iterable[Logger]) -> list[MLFlowLogger]:
    return [logger for logger in loggers if isinstance(logger, MLFlowLogger)]


def metric_key(key: str) -> str:
    """``test/fixed@0.5/sensitivity`` → ``test/fixed_at_0.5/sensitivity``: a name MLflow takes."""
    return INVALID_KEY_CHARACTERS.sub("_", key.replace("@", "_at_"))


def log_scalars(logger: MLFlowLogger, values: dict[str, float], step: int | None = None) -> None:
    """``values`` as MLflow metrics under names it accepts."""
    logger.log_metrics({metric_key(key): value for key, value in values.items()}, step)


def log_files(loggers: Iterable[Logger], paths: Iterable[Path], artifact_path: str) -> None:
    """Each existing file of ``paths`` as an artifact under ``artifact_path`` of every MLflow
    run among ``loggers``."""
    files = [Path(path) for path in paths if Path(path).is_file()]
    for logger in mlflow_loggers(loggers):
        for path in files:
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path)
