"""Compare evaluated runs (e.g. the four backbones of a multirun): a Markdown and a CSV table,
and the ROC and PR curves of all runs overlaid in one figure each.

A run is a directory holding ``metrics/<split>.json`` and ``predictions/<split>.csv`` (written
by ``python -m deepcovid.evaluate`` or by the final test of ``python -m deepcovid.train``);
what it was (backbone, seed, fold) comes from its evaluation, which read it from the checkpoint.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from deepcovid.metrics.discrimination import precision_recall_curve, roc_curve
from deepcovid.metrics.operating_points import OperatingPoint
from deepcovid.metrics.summary import Evaluation, arrays
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.results import figures
from deepcovid.results.evaluation import read_evaluation
from deepcovid.results.markdown import ci_label, number, table, threshold_text, with_ci
from deepcovid.results.names import INTERVAL_NAMES, rule_name
from deepcovid.results.predictions import read_predictions
from deepcovid.utils.files import save_figure, write_csv_atomic, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class EvaluatedRun:
    """One run: its name (its backbone, made unique), directory, evaluation and predictions."""

    name: str
    directory: Path
    evaluation: Evaluation
    predictions: pd.DataFrame


def natural_key(path: Path) -> list:
    """Sort ``2-resnet50`` before ``10-densenet121``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def find_run_dirs(dirs: list[Path], split: str = "test") -> list[Path]:
    """Each directory that is a run, or the runs below it (a multirun folder), in order."""
    found: list[Path] = []
    for directory in map(Path, dirs):
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: no such run or multirun directory")
        if (directory / "metrics" / f"{split}.json").is_file():
            runs = [directory]
        else:
            runs = sorted(
                (m.parent.parent for m in directory.rglob(f"metrics/{split}.json")), key=natural_key
            )
        if not runs:
            raise FileNotFoundError(
                f"{directory}: no metrics/{split}.json in it or below it. Evaluate the runs "
                "first: `python -m deepcovid.evaluate ckpt_path=RUN/checkpoints/… data.root=…`"
            )
        found += [run for run in runs if run not in found]
    return found


def load_runs(dirs: list[Path], split: str = "test") -> list[EvaluatedRun]:
    """The evaluated runs under ``dirs``; runs sharing a backbone get their folder name added."""
    runs = []
    for run_dir in find_run_dirs(dirs, split):
        predictions_path = run_dir / "predictions" / f"{split}.csv"
        if not predictions_path.is_file():
            raise FileNotFoundError(f"{predictions_path}: missing (metrics without predictions)")
        evaluation = read_evaluation(run_dir, split)
        runs.append(
            EvaluatedRun(
                evaluation.model.backbone, run_dir, evaluation, read_predictions(predictions_path)
            )
        )
    repeated = {name for name, count in Counter(r.name for r in runs).items() if count > 1}
    for run in runs:
        if run.name in repeated:
            run.name = f"{run.name} ({run.directory.name})"
    return runs


def with_bounds(name: str, value: float | None, ci: tuple) -> dict[str, Any]:
    """``name``, ``name_low`` and ``name_high``."""
    return {name: value, f"{name}_low": ci[0], f"{name}_high": ci[1]}


def point_columns(point: OperatingPoint) -> dict[str, Any]:
    """An operating point's columns of the comparison CSV."""
    counts = dict.fromkeys(("tp", "fp", "tn", "fn")) if point.counts is None else vars(point.counts)
    return {
        "operating_point": point.name,
        "target": point.target,
        "chosen_on": point.chosen_on,
        "threshold": point.threshold,
        **with_bounds("sensitivity", point.sensitivity, point.sensitivity_ci),
        **with_bounds("specificity", point.specificity, point.specificity_ci),
        **counts,
    }


def comparison_frame(runs: list[EvaluatedRun]) -> pd.DataFrame:
    """One row per run and operating point, every number with its interval bounds."""
    rows = []
    for run in runs:
        e = run.evaluation
        common = {
            "model": run.name,
            "run_dir": str(run.directory),
            "split": e.split,
            "n": e.counts.n,
            "n_positive": e.counts.n_positive,
            "n_negative": e.counts.n_negative,
            **with_bounds("auroc", e.auroc, e.auroc_ci),
            **with_bounds("average_precision", e.average_precision, e.average_precision_ci),
            "ece": e.calibration.ece,
        }
        rows += [common | point_columns(p) for p in [*e.fixed_points, *e.chosen_points]]
    frame = pd.DataFrame(rows)
    counts = ["tp", "fp", "tn", "fn"]
    frame[counts] = frame[counts].astype("Int64")  # empty, not NaN, where no threshold
    return frame


def rate_cells(point: OperatingPoint) -> list[str]:
    """Threshold, sensitivity and specificity (with intervals) of one operating point."""
    return [
        threshold_text(point.threshold),
        with_ci(point.sensitivity, point.sensitivity_ci, as_percent=True),
        with_ci(point.specificity, point.specificity_ci, as_percent=True),
    ]


def comparison_markdown(runs: list[EvaluatedRun]) -> str:
    """The paper-style comparison: discrimination per model, then sensitivity and specificity
    at the val-chosen and at the fixed thresholds, with intervals."""
    first = runs[0].evaluation
    ci = ci_label(first.confidence)
    columns = ["Model", "Threshold", f"Sensitivity ({ci})", f"Specificity ({ci})"]
    lines = [
        f"# Comparison of {len(runs)} models on the {first.split} split",
        "",
        f"Intervals: {ci}, percentile bootstrap over {first.bootstrap.unit}s "
        f"({first.bootstrap.n_resamples} resamples) for AUROC and AP, "
        f"{INTERVAL_NAMES[first.interval]} for sensitivity and specificity. An image is "
        "called COVID when P(COVID) ≥ the threshold.",
        "",
        table(
            ["Model", "Images", "COVID", "non-COVID", f"AUROC ({ci})", f"AP ({ci})", "ECE"],
            [
                [
                    r.name,
                    r.evaluation.counts.n,
                    r.evaluation.counts.n_positive,
                    r.evaluation.counts.n_negative,
                    with_ci(r.evaluation.auroc, r.evaluation.auroc_ci),
                    with_ci(r.evaluation.average_precision, r.evaluation.average_precision_ci),
                    number(r.evaluation.calibration.ece),
                ]
                for r in runs
            ],
        ),
        "",
        "## Thresholds chosen on the validation split",
        "",
    ]
    for reference in first.chosen_points:
        rows = [
            [run.name, *rate_cells(point)]
            for run in runs
            for point in run.evaluation.chosen_points
            if point.name == reference.name
        ]
        lines += [f"### {rule_name(reference)}", "", table(columns, rows), ""]
    lines += ["## Fixed thresholds", ""]
    for reference in first.fixed_points:
        rows = [
            [run.name, *rate_cells(point)]
            for run in runs
            for point in run.evaluation.fixed_points
            if point.threshold == reference.threshold
        ]
        lines += [f"### Threshold {reference.threshold:g}", "", table(columns, rows), ""]
    return "\n".join(lines).rstrip() + "\n"


def overlay_figures(runs: list[EvaluatedRun]) -> dict[str, Figure]:
    """``roc`` and ``pr``: every run's curve in one figure (runs without a curve left out)."""
    roc, pr = {}, {}
    for run in runs:
        label, prob = arrays(run.predictions)
        e = run.evaluation
        try:
            roc[f"{run.name} (AUROC {number(e.auroc)})"] = roc_curve(label, prob)
            pr[f"{run.name} (AP {number(e.average_precision)})"] = precision_recall_curve(
                label, prob
            )
        except UndefinedMetric as reason:
            log.warning("%s: no curves: %s", run.directory, reason)
    split = runs[0].evaluation.split
    return {
        "roc": figures.roc_figure(roc, title=f"ROC curves ({split})"),
        "pr": figures.pr_figure(pr, title=f"Precision-recall curves ({split})"),
    }


def write_comparison(dirs: list[Path], output: Path, split: str = "test") -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv``, ``roc.png`` and ``pr.png`` to ``output``."""
    runs = load_runs(dirs, split)
    output = Path(output)
    written = {
        "csv": write_csv_atomic(comparison_frame(runs), output / "comparison.csv"),
        "markdown": write_text_atomic(comparison_markdown(runs), output / "comparison.md"),
    }
    for name, figure in overlay_figures(runs).items():
        written[name] = save_figure(figure, output / f"{name}.png")
    return written
