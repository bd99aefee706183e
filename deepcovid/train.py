"""``python -m deepcovid.train [overrides]``: fit a classifier, then evaluate its best checkpoint
on the test split. See conf/train.yaml; ``--cfg job`` prints the composed config."""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from deepcovid.callbacks.checkpoint import BestCheckpoint
from deepcovid.callbacks.evaluation import EvaluationWriter
from deepcovid.callbacks.safety import exception_checkpoint
from deepcovid.data.datamodule import XrayDataModule
from deepcovid.metrics.summary import Evaluation, MetricSettings
from deepcovid.models.checkpoints import (
    AtomicCheckpointIO,
    read_checkpoint,
    resume_checkpoint,
    stopped_mid_epoch,
)
from deepcovid.models.classifier import LOGGED_METRICS, CovidClassifier
from deepcovid.utils.command import command_loggers, start
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.files import write_json_atomic
from deepcovid.utils.instantiate import instantiate_callbacks, instantiate_with
from deepcovid.utils.tracking import log_config, log_summary

log = logging.getLogger(__name__)
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a job ended by SIGTERM


@dataclass
class TrainResult:
    """What a training run produced: its best checkpoint by the monitored metric (score and
    epoch), and the evaluation of the tested weights."""

    output_dir: Path
    best_checkpoint: str | None = None
    best_score: float | None = None
    best_epoch: int | None = None
    evaluation: Evaluation | None = None


def check_monitor(cfg: DictConfig) -> None:
    """Stop at once when the monitored metric (or the sweep objective) is not one the model
    logs: a misspelled name would otherwise pick checkpoints by nothing, or optimise NaN."""
    for key in ("monitor", "optimized_metric"):
        name = cfg.get(key)
        if name and name not in LOGGED_METRICS:
            raise ValueError(
                f"{key}={name!r} is not a logged metric; choose one of {list(LOGGED_METRICS)}"
            )
    if cfg.get("optimized_metric") and cfg.optimized_metric != cfg.monitor:
        raise ValueError(
            f"optimized_metric={cfg.optimized_metric!r} differs from monitor={cfg.monitor!r}: the "
            "sweep objective is the score of the best checkpoint, chosen by the monitored metric"
        )


def best_checkpoint(trainer: L.Trainer) -> BestCheckpoint | None:
    """The callback that keeps the best checkpoint by the monitored metric, if any."""
    return next((c for c in trainer.checkpoint_callbacks if isinstance(c, BestCheckpoint)), None)


def finish_fit(result: TrainResult, trainer: L.Trainer, monitor: str, loggers: list) -> None:
    """Record the best checkpoint's score and epoch (the sweep objective, and the run summary's
    ``<monitor>_best``)."""
    best = best_checkpoint(trainer)
    if best is None or not best.best_model_path:
        log.warning("no best checkpoint was saved (no validation, or checkpoints off)")
        return
    result.best_checkpoint = best.best_model_path
    result.best_score = float(best.best_model_score)
    result.best_epoch = int(read_checkpoint(best.best_model_path)["epoch"])
    log_summary(
        loggers, {f"{monitor}_best": result.best_score, f"{monitor}_best_epoch": result.best_epoch}
    )
    log.info(
        "tested checkpoint (%s): %s %.4f at epoch %d: %s",
        "the last epoch's" if best.select == "last" else "the best",
        monitor,
        result.best_score,
        result.best_epoch,
        result.best_checkpoint,
    )


def refuse_unfinished(ckpt_path: str) -> None:
    """Stop ``train=false`` from testing a checkpoint saved mid-epoch (``interrupted.ckpt``):
    it is not a finished model, and its thresholds come from an earlier epoch."""
    stored = read_checkpoint(ckpt_path)
    if stopped_mid_epoch(stored):
        raise ValueError(
            f"{ckpt_path}: saved mid-epoch (epoch {stored['epoch']}) when a fit stopped early: "
            "not a finished model. Test best-*.ckpt or last.ckpt, or finish the fit (ckpt_path="
            "last train=true in the same hydra.run.dir); python -m deepcovid.evaluate "
            "allow_incomplete=true evaluates it anyway and says so."
        )


def read_data(trainer: L.Trainer, datamodule: XrayDataModule) -> None:
    """Download (``data.download=true``) and read the data before fit, to check it, in
    Lightning's order: ``prepare_data`` on each node's local rank 0 only (on global rank 0 with
    ``prepare_data_per_node=false``). When it downloads, the other ranks read the data inside
    fit or test instead, after Lightning's prepare_data barrier: ranks started together (srun,
    torchrun) would otherwise look for it before it is there. The ranks Lightning's own DDP
    launcher starts begin inside fit, after this."""
    per_node = datamodule.prepare_data_per_node
    if trainer.local_rank == 0 and (per_node or trainer.node_rank == 0):
        datamodule.prepare_data()
    elif datamodule.settings.download.download:
        return
    datamodule.setup("fit")


def train(cfg: DictConfig) -> TrainResult:
    """Seed, fit, test the best checkpoint (or ``ckpt_path`` with ``train=false``)."""
    start(cfg)
    check_monitor(cfg)
    output_dir = Path(cfg.paths.output_dir)
    settings: MetricSettings = hydra.utils.instantiate(cfg.metrics)
    model: CovidClassifier = hydra.utils.instantiate(cfg.model)
    model.settings = settings
    datamodule: XrayDataModule = instantiate_with(cfg.data, preprocessing=model.preprocessing)
    writer = EvaluationWriter(
        output_dir, settings, failures=hydra.utils.instantiate(cfg.failures),
        explainer=hydra.utils.instantiate(cfg.get("explainer")),
    )  # fmt: skip
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), writer]
    with command_loggers(cfg) as loggers:
        trainer: L.Trainer = hydra.utils.instantiate(
            cfg.trainer,
            callbacks=callbacks,
            logger=loggers or False,
            plugins=[AtomicCheckpointIO()],
        )
        log_config(loggers, cfg)
        result = TrainResult(output_dir)
        try:
            read_data(trainer, datamodule)
            if trainer.is_global_zero:
                write_json_atomic(datamodule.report.to_dict(), output_dir / "data_check.json")
            given = (
                resume_checkpoint(cfg.ckpt_path, output_dir / "checkpoints")
                if cfg.get("ckpt_path")
                else None
            )
            if cfg.train:
                trainer.fit(model, datamodule=datamodule, ckpt_path=given, weights_only=True)
                finish_fit(result, trainer, cfg.monitor, loggers)
            if cfg.test:
                if not cfg.train and given is not None:
                    refuse_unfinished(given)
                tested = result.best_checkpoint if cfg.train else given
                if tested is None:
                    log.warning("no checkpoint to test: testing the current weights")
                trainer.test(model, datamodule=datamodule, ckpt_path=tested, weights_only=True)
                result.evaluation = writer.evaluation
            pretrained_on = ", ".join(model.pretrained_on) or "none (random initialisation)"
            log_summary(
                loggers,
                {
                    "data/skipped_files": len(datamodule.skipped),
                    "model/pretrained_on": pretrained_on,
                },
            )
        except SIGTERMException as stop:
            log.warning(
                "stopped by SIGTERM; weights of the last step saved to %s. Resume exactly from the "
                "last epoch end with ckpt_path=last (same hydra.run.dir)",
                exception_checkpoint(trainer)
                or "nowhere (callbacks.checkpoint_on_interrupt is off)",
            )
            raise SystemExit(SIGTERM_EXIT_CODE) from stop
    return result


def objective(cfg: DictConfig, result: TrainResult) -> float | None:
    """What a hyper-parameter sweeper maximises (``cfg.optimized_metric``): the score of the
    best checkpoint by the monitored metric, the one that is tested."""
    if not cfg.get("optimized_metric"):
        return None
    if result.best_score is None:
        raise RuntimeError("no best checkpoint was saved: the sweep objective is undefined")
    return result.best_score


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return objective(cfg, train(cfg))


if __name__ == "__main__":
    import deepcovid.conf  # noqa: F401  (registers the schemas, also for --config-path DIR)

    main()
