"""Evaluate predictions and write a run's results: predictions/, metrics/, plots/, report.md.

:func:`write_evaluation` is shared by ``python -m deepcovid.evaluate`` (:func:`evaluate`) and
the final test of ``python -m deepcovid.train`` (``callbacks/evaluation.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import pandas as pd
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf

from deepcovid import plots
from deepcovid.markdown import results_section, rule_name
from deepcovid.metrics.calibration import reliability_bins
from deepcovid.metrics.discrimination import Curve, precision_recall_curve, roc_curve
from deepcovid.metrics.operating_points import confusion_matrix, counts_at
from deepcovid.metrics.summary import MetricSettings, arrays, summarize
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.models.loading import load_classifier
from deepcovid.predictions import predictions_frame
from deepcovid.utils.console import print_config_tree, silence_known_warnings
from deepcovid.utils.files import atomic_path, save_figure, write_csv_atomic, write_json_atomic

log = logging.getLogger(__name__)
EVALUATED_SPLITS = ("test", "val")


def curve_figure(
    make_curve: Callable[..., Curve],
    draw: Callable[[Curve], Figure],
    title: str,
    frame: pd.DataFrame,
) -> Figure:
    """``draw(curve)``, or a placeholder naming why the curve is undefined."""
    try:
        return draw(make_curve(*arrays(frame)))
    except UndefinedMetric as reason:
        return plots.unavailable_figure(title, str(reason))


def result_figures(frame: pd.DataFrame, metrics: dict[str, Any]) -> dict[str, Figure]:
    """The figures of ``plots/``: ROC (with the val-chosen points), PR, confusion matrix at the
    model's threshold, score histogram, reliability diagram."""
    label, prob = arrays(frame)
    threshold = metrics["threshold"]
    chosen = [
        p for p in metrics["operating_points"] if p["chosen_on"] and p["threshold"] is not None
    ]
    marks = [
        (f"{rule_name(p)} ({p['threshold']:.3g})", 1 - p["specificity"], p["sensitivity"])
        for p in chosen
        if p["specificity"] is not None and p["sensitivity"] is not None
    ]
    return {
        "roc": curve_figure(
            roc_curve,
            lambda c: plots.roc_figure({f"AUROC {metrics['auroc']:.3f}": c}, marks),
            "ROC curve",
            frame,
        ),
        "pr": curve_figure(
            precision_recall_curve,
            lambda c: plots.pr_figure({f"AP {metrics['average_precision']:.3f}": c}, label.mean()),
            "Precision-recall",
            frame,
        ),
        "confusion_matrix": plots.confusion_matrix_figure(
            confusion_matrix(counts_at(label, prob, threshold)), threshold
        ),
        "score_histogram": plots.score_histogram_figure(
            label, prob, [threshold, *[p["threshold"] for p in chosen]]
        ),
        "reliability": plots.reliability_figure(
            reliability_bins(label, prob, metrics["calibration"]["n_bins"]), metrics["ece"]
        ),
    }


def write_evaluation(
    frame: pd.DataFrame,
    val: pd.DataFrame | None,
    settings: MetricSettings,
    threshold: float,
    output_dir: str | Path,
    split: str = "test",
    model: dict[str, Any] | None = None,
    val_reason: str = "no validation predictions were given",
    skipped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``predictions/<split>.csv`` (and ``val.csv``), ``metrics/<split>.json``,
    ``plots/*.png`` and ``report.md`` under ``output_dir``; return the metrics.

    ``frame``/``val`` are predictions frames (:func:`deepcovid.predictions.predictions_frame`);
    thresholds are chosen on ``val`` (``val_reason`` says why it is None); ``model`` (backbone,
    checkpoint) is recorded as is.
    """
    output_dir = Path(output_dir)
    # float64 throughout: the CSVs then round-trip exactly, so a recomputation from them
    # reproduces every count, even for a score equal to a threshold chosen on val
    frame = frame.astype({"prob_covid": "float64"})
    val = None if val is None else val.astype({"prob_covid": "float64"})
    metrics = summarize(frame, val, settings, threshold, split, val_reason)
    metrics["model"] = model or {}
    # Files left out under data.on_bad_file=skip: counted, and named, with the results.
    metrics["skipped_files"] = len(skipped or {})
    metrics["skipped"] = [{"path": p, "reason": r} for p, r in sorted((skipped or {}).items())]
    write_csv_atomic(frame, output_dir / "predictions" / f"{split}.csv")
    if val is not None and split != "val":
        write_csv_atomic(val, output_dir / "predictions" / "val.csv")
    write_json_atomic(metrics, output_dir / "metrics" / f"{split}.json")
    for name, figure in result_figures(frame, metrics).items():
        save_figure(figure, output_dir / "plots" / f"{name}.png")
    with atomic_path(output_dir / "report.md") as partial:
        partial.write_text(results_section(metrics), encoding="utf-8")
    log.info("wrote the %s evaluation to %s", split, output_dir / "report.md")
    return metrics


def predict_split(
    trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule, split: str
) -> pd.DataFrame:
    """Run ``model`` over the val or test split through the datamodule's own loaders; the
    predictions frame, gathered from all ranks."""
    if split == "val":
        trainer.validate(model, datamodule=datamodule, verbose=False)
    else:
        trainer.test(model, datamodule=datamodule, verbose=False)
    return predictions_frame(model.gathered(split), datamodule.table)


def evaluate(cfg: DictConfig) -> dict[str, Any] | None:
    """Run ``cfg.ckpt_path`` on ``cfg.data.split`` and on val; write the evaluation (rank 0).

    Returns the metrics on rank 0, None on other ranks.
    """
    silence_known_warnings()
    if cfg.get("print_config"):
        print_config_tree(cfg)
    L.seed_everything(cfg.seed, workers=True)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    split = data.pop("split", "test")
    if split not in EVALUATED_SPLITS:
        raise ValueError(f"data.split={split!r}; choose one of {list(EVALUATED_SPLITS)}")
    datamodule = hydra.utils.instantiate(data)
    datamodule.setup("test")
    model = load_classifier(cfg.ckpt_path)
    settings: MetricSettings = hydra.utils.instantiate(cfg.metrics)
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[])
    frame = predict_split(trainer, model, datamodule, split)
    val, val_reason = None, f"the data under {datamodule.root} has no val split"
    if split == "val":
        val = frame
    elif (datamodule.table["split"] == "val").any():
        val = predict_split(trainer, model, datamodule, "val")
    if not trainer.is_global_zero:
        return None
    return write_evaluation(
        frame,
        val,
        settings,
        float(model.hparams.threshold),
        cfg.paths.output_dir,
        split,
        {"backbone": model.hparams.backbone, "checkpoint": str(cfg.ckpt_path)},
        val_reason,
        datamodule.skipped,
    )
