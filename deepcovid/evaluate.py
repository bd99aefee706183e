"""``python -m deepcovid.evaluate ckpt_path=FILE data.root=DIR``: evaluate a checkpoint. See
conf/eval.yaml.

Two modes, named in ``report.md`` and ``metrics/<split>.json``:

- the same data as in training (default): the checkpoint's record says what defined its splits
  (data fingerprint, seed, fractions, folds, val and test members); they are rebuilt from it
  and compared, and any difference stops the run, naming it. Operating points come from the
  training run's val predictions, stored in the checkpoint.
- another site's data (``external=true``): every image (or the data's own test split) is a test
  image. Operating points are ``frozen`` (chosen on the training run's val predictions, stored
  in the checkpoint) or ``site_recalibrated`` (chosen again on a val split of the new site).

Several checkpoints (``ckpt_path=[a,b]``, or a run or multirun folder: its best checkpoints)
and ``tta=[hflip,crop]`` are evaluated as one model whose P(COVID) is the mean of the members'
probabilities (:mod:`deepcovid.models.ensemble`); its operating points are chosen on its own
val predictions (run on the training run's val split; frozen: the mean of the members'
recorded ones), and ``metrics/<split>.json`` and ``report.md`` say so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from omegaconf import MISSING, DictConfig, open_dict

from deepcovid.callbacks.evaluation import TRAINING_VAL, EvaluationWriter, absolute_paths
from deepcovid.data.datamodule import XrayDataModule
from deepcovid.data.recorded import datamodule_for
from deepcovid.metrics.predictions import predictions_frame
from deepcovid.metrics.summary import Evaluation, MetricSettings
from deepcovid.models.checkpoints import load_classifier, read_checkpoint, stopped_mid_epoch
from deepcovid.models.classifier import CovidClassifier
from deepcovid.models.ensemble import EnsembleMismatchError, checkpoint_paths, load_combined
from deepcovid.models.record import ModelRecord
from deepcovid.results.evaluation import ValPredictions
from deepcovid.utils.choices import choices
from deepcovid.utils.command import command_loggers, start
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.files import write_json_atomic

log = logging.getLogger(__name__)
SPLITS = ("test", "val")
OPERATING_POINTS = ("frozen", "site_recalibrated")
EvalSplit = choices("EvalSplit", SPLITS)
OperatingPoints = choices("OperatingPoints", OPERATING_POINTS)


@dataclass
class EvalConfig:
    """``conf/eval.yaml``'s schema (registered in ``deepcovid.conf``): Hydra checks each key's
    type, and ``split`` and ``operating_points`` against their choices, when it composes the
    config (the yaml gives the values; the groups carry schemas of their own)."""

    data: Any = MISSING
    trainer: Any = MISSING
    logger: Any = MISSING
    metrics: Any = MISSING
    failures: Any = MISSING
    explainer: Any = MISSING
    paths: Any = MISSING
    task_name: str = MISSING
    tags: list[str] = MISSING
    print_config: bool = MISSING
    seed: int = MISSING
    ckpt_path: Any = MISSING  # a checkpoint, a list of them or a folder
    split: EvalSplit = MISSING
    external: bool = MISSING
    operating_points: OperatingPoints = MISSING
    full_precision_eval: bool = MISSING
    allow_incomplete: bool = MISSING
    tta: list[str] = MISSING
    tta_crop_fraction: float = MISSING


def val_predictions_for(
    cfg: DictConfig, record: ModelRecord, trainer: L.Trainer, model: CovidClassifier,
    datamodule: XrayDataModule,
) -> ValPredictions:  # fmt: skip
    """The val predictions the operating points are chosen on, as the mode says; an ensemble's
    (or TTA's) are its own: run on the training run's val split, or (frozen) the mean of its
    members' recorded ones."""
    combination = record.combination
    if cfg.external and cfg.operating_points == "site_recalibrated":
        trainer.validate(model, datamodule=datamodule, verbose=False)
        frame = predictions_frame(model.gathered("val"), datamodule.table)
        return ValPredictions(frame, "this site's val split (site recalibration)", "site val")
    if combination is not None and not cfg.external:
        trainer.validate(model, datamodule=datamodule, verbose=False)
        frame = predictions_frame(model.gathered("val"), datamodule.table)
        source = f"the ensemble's own val predictions on {TRAINING_VAL} ({combination.describe()})"
        return ValPredictions(frame, source, "val")
    if record.val_predictions is None:
        return ValPredictions(None, "", "val", f"{checkpoint_label(cfg)} holds no val predictions")
    if cfg.external:  # the training images are not here: their paths as they were
        root = Path(record.data.root) if record.data else datamodule.root
        source = f"{TRAINING_VAL} (thresholds frozen, applied to this site)"
        if combination is not None:
            source += f"; {combination.thresholds_from}"
        return ValPredictions(absolute_paths(record.val_predictions, root), source, "training val")
    frame = absolute_paths(record.val_predictions, datamodule.root)
    return ValPredictions(frame, TRAINING_VAL, "val")


def checkpoint_label(cfg: DictConfig) -> str:
    """The evaluated checkpoint(s), as the evaluation names them."""
    return ", ".join(str(path) for path in checkpoint_paths(cfg.ckpt_path))


def combined_model(cfg: DictConfig) -> CovidClassifier:
    """The checkpoint, or the ensemble and TTA model of ``ckpt_path`` and ``tta``; members
    trained on different data or splits are refused on the training data (their val or test
    images may be others' training images)."""
    model = load_combined(
        cfg.ckpt_path, cfg.tta, cfg.tta_crop_fraction,
        load=lambda path: load_classifier(path, full_precision_eval=cfg.full_precision_eval),
    )  # fmt: skip
    combination = model.record.combination
    if combination is not None and combination.split_note and not cfg.external:
        raise EnsembleMismatchError(
            f"{combination.split_note}: on the training data an ensemble's val or test images "
            "may be some members' training images. Ensemble checkpoints of one split (seeds, "
            "backbones), or evaluate on other data with external=true"
        )
    return model


class IncompleteCheckpointError(RuntimeError):
    """A checkpoint saved mid-epoch by a fit that stopped early, given without
    ``allow_incomplete=true``."""


def incomplete_note(ckpt_path: str, allow_incomplete: bool) -> str:
    """Nothing for a checkpoint saved at an epoch end. For one saved mid-epoch: with
    ``allow_incomplete``, the note that ``report.md`` carries, else an error naming it."""
    stored = read_checkpoint(ckpt_path)
    if not stopped_mid_epoch(stored):
        return ""
    where = f"saved mid-epoch (epoch {stored['epoch']}, step {stored['global_step']})"
    if allow_incomplete:
        return f" (an interrupted checkpoint, {where}: not a finished model)"
    folder = Path(ckpt_path).parent
    raise IncompleteCheckpointError(
        f"{ckpt_path}: {where} when a fit stopped early (SIGTERM, an error or a non-finite "
        "loss): not a finished model, and its thresholds are from an earlier epoch. Evaluate "
        f"{folder}/best-*.ckpt or {folder}/last.ckpt, or finish the fit first (python -m "
        "deepcovid.train ckpt_path=last in the same hydra.run.dir); to evaluate it anyway, "
        "pass allow_incomplete=true (report.md then says so)."
    )


def wandb_identity(cfg: DictConfig, record: ModelRecord) -> None:
    """Link the eval run to its training run in W&B: same group, name ``<training>-eval``,
    tagged with the backbone."""
    wandb = cfg.get("logger", {}).get("wandb") if cfg.get("logger") else None
    if wandb is None:
        return
    trained = record.tracking
    with open_dict(cfg):
        wandb.group = wandb.group or trained.get("group") or trained.get("name")
        if trained.get("name") and not wandb.name:
            wandb.name = f"{trained['name']}-eval"
        cfg.tags = [*cfg.tags, record.backbone]


def evaluate(cfg: DictConfig) -> Evaluation | None:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.split``; the evaluation on rank 0, else None."""
    start(cfg)
    if cfg.external and cfg.split != "test":
        raise ValueError("external=true evaluates the test split of the other site: drop split=")
    label = checkpoint_label(cfg)
    incomplete = "".join(
        incomplete_note(str(path), cfg.allow_incomplete) for path in checkpoint_paths(cfg.ckpt_path)
    )
    model = combined_model(cfg)
    record = model.record
    with_val = cfg.operating_points == "site_recalibrated"
    datamodule = datamodule_for(cfg.data, record, label, cfg.split, cfg.external, with_val)
    settings: MetricSettings = hydra.utils.instantiate(cfg.metrics)
    wandb_identity(cfg, record)
    with command_loggers(cfg) as loggers:
        trainer: L.Trainer = hydra.utils.instantiate(
            cfg.trainer, logger=loggers or False, callbacks=[]
        )
        val_predictions = val_predictions_for(cfg, record, trainer, model, datamodule)
        mode = (
            f"external data, {cfg.operating_points.replace('_', '-')} operating points"
            if cfg.external
            else "the training data"
        ) + incomplete
        writer = EvaluationWriter(
            cfg.paths.output_dir, settings, val_predictions, label, mode,
            hydra.utils.instantiate(cfg.failures), hydra.utils.instantiate(cfg.get("explainer")),
        )  # fmt: skip
        trainer.callbacks.append(writer)
        if trainer.is_global_zero:
            write_json_atomic(
                datamodule.report.to_dict(), Path(cfg.paths.output_dir) / "data_check.json"
            )
        trainer.test(model, datamodule=datamodule, verbose=False)
    return writer.evaluation


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    import deepcovid.conf  # noqa: F401  (registers the schemas, also for --config-path DIR)

    main()
