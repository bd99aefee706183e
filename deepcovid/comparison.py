"""Compare evaluated runs (e.g. the four backbones of a multirun): a Markdown and a CSV table,
and the ROC and PR curves of all runs overlaid in one figure each.

A run is a directory holding ``metrics/<split>.json`` and ``predictions/<split>.csv`` (written
by ``python -m deepcovid.evaluate`` or by the final test of ``python -m deepcovid.train``).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from deepcovid import plots
from deepcovid.markdown import (
    INTERVAL_NAMES,
    ci_label,
    number,
    rule_name,
    table,
    threshold_text,
    with_ci,
)
from deepcovid.metrics.discrimination import precision_recall_curve, roc_curve
from deepcovid.metrics.summary import arrays
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.utils.files import atomic_path, save_figure, write_csv_atomic

log = logging.getLogger(__name__)


@dataclass
class EvaluatedRun:
    """One run's name (its backbone), directory, metrics and predictions."""

    name: str
    directory: Path
    metrics: dict
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


def backbone_of(run_dir: Path, metrics: dict) -> str:
    """The backbone named in the run's ``.hydra/config.yaml``, else in its metrics, else the
    directory name."""
    config = run_dir / ".hydra" / "config.yaml"
    if config.is_file():
        backbone = OmegaConf.select(OmegaConf.load(config), "model.backbone")
        if backbone:
            return str(backbone)
    return str((metrics.get("model") or {}).get("backbone") or run_dir.name)


def load_runs(dirs: list[Path], split: str = "test") -> list[EvaluatedRun]:
    """The evaluated runs under ``dirs``; runs sharing a backbone get their folder name added."""
    runs = []
    for run_dir in find_run_dirs(dirs, split):
        metrics = json.loads((run_dir / "metrics" / f"{split}.json").read_text(encoding="utf-8"))
        predictions_path = run_dir / "predictions" / f"{split}.csv"
        if not predictions_path.is_file():
            raise FileNotFoundError(f"{predictions_path}: missing (metrics without predictions)")
        predictions = pd.read_csv(predictions_path)
        runs.append(EvaluatedRun(backbone_of(run_dir, metrics), run_dir, metrics, predictions))
    repeated = {name for name, count in Counter(r.name for r in runs).items() if count > 1}
    for run in runs:
        if run.name in repeated:
            run.name = f"{run.name} ({run.directory.name})"
    return runs


def with_bounds(source: dict[str, Any], *names: str) -> dict[str, Any]:
    """``name``, ``name_low`` and ``name_high`` for each name, from ``source[name]`` and its
    interval ``source[name + "_ci"]``."""
    columns: dict[str, Any] = {}
    for name in names:
        low, high = source[f"{name}_ci"]
        columns |= {name: source[name], f"{name}_low": low, f"{name}_high": high}
    return columns


def comparison_frame(runs: list[EvaluatedRun]) -> pd.DataFrame:
    """One row per run and operating point, every number with its interval bounds."""
    rows = []
    for run in runs:
        m = run.metrics
        common = {
            "model": run.name,
            "run_dir": str(run.directory),
            "split": m["split"],
            "n": m["n"],
            "n_positive": m["n_positive"],
            "n_negative": m["n_negative"],
            **with_bounds(m, "auroc", "average_precision"),
            "ece": m["ece"],
        }
        for point in m["operating_points"]:
            rows.append(
                common
                | {
                    "operating_point": point["name"],
                    "target": point["target"],
                    "chosen_on": point["chosen_on"],
                    "threshold": point["threshold"],
                    **with_bounds(point, "sensitivity", "specificity"),
                    **{k: point[k] for k in ("tp", "fp", "tn", "fn")},
                }
            )
    frame = pd.DataFrame(rows)
    counts = ["tp", "fp", "tn", "fn"]
    frame[counts] = frame[counts].astype("Int64")  # empty, not NaN, where no threshold
    return frame


def comparison_markdown(runs: list[EvaluatedRun]) -> str:
    """The paper-style comparison: discrimination per model, then sensitivity and specificity
    at the val-chosen and at the fixed thresholds, with intervals."""
    first = runs[0].metrics
    ci = ci_label(first)
    lines = [
        f"# Comparison of {len(runs)} models on the {first['split']} split",
        "",
        f"Intervals: {ci}, percentile bootstrap over {first['bootstrap']['unit']}s "
        f"({first['bootstrap']['n_resamples']} resamples) for AUROC and AP, "
        f"{INTERVAL_NAMES[first['interval']]} for sensitivity and specificity. An image is "
        "called COVID when P(COVID) ≥ the threshold.",
        "",
        table(
            ["Model", "Images", "COVID", "non-COVID", f"AUROC ({ci})", f"AP ({ci})", "ECE"],
            [
                [
                    r.name,
                    r.metrics["n"],
                    r.metrics["n_positive"],
                    r.metrics["n_negative"],
                    with_ci(r.metrics["auroc"], r.metrics["auroc_ci"]),
                    with_ci(r.metrics["average_precision"], r.metrics["average_precision_ci"]),
                    number(r.metrics["ece"]),
                ]
                for r in runs
            ],
        ),
        "",
        "## Thresholds chosen on the validation split",
        "",
    ]
    chosen = [p for p in first["operating_points"] if p["chosen_on"]]
    for reference in chosen:
        rows = []
        for run in runs:
            point = next(
                p for p in run.metrics["operating_points"] if p["name"] == reference["name"]
            )
            rows.append([run.name, *rate_cells(point)])
        lines += [f"### {rule_name(reference)}", "", table(point_columns(ci), rows), ""]
    lines += ["## Fixed thresholds", ""]
    thresholds = [p["threshold"] for p in first["operating_points"] if not p["chosen_on"]]
    for threshold in thresholds:
        rows = []
        for run in runs:
            point = next(
                (
                    p
                    for p in run.metrics["operating_points"]
                    if not p["chosen_on"] and p["threshold"] == threshold
                ),
                None,
            )
            if point is not None:
                rows.append([run.name, *rate_cells(point)])
        lines += [f"### Threshold {threshold:g}", "", table(point_columns(ci), rows), ""]
    return "\n".join(lines).rstrip() + "\n"


def point_columns(ci: str) -> list[str]:
    return ["Model", "Threshold", f"Sensitivity ({ci})", f"Specificity ({ci})"]


def rate_cells(point: dict) -> list[str]:
    """Threshold, sensitivity and specificity (with intervals) of one operating point."""
    return [
        threshold_text(point["threshold"]),
        with_ci(point["sensitivity"], point["sensitivity_ci"], as_percent=True),
        with_ci(point["specificity"], point["specificity_ci"], as_percent=True),
    ]


def overlay_figures(runs: list[EvaluatedRun]) -> dict[str, Figure]:
    """``roc`` and ``pr``: every run's curve in one figure (runs without a curve left out)."""
    roc, pr = {}, {}
    for run in runs:
        label, prob = arrays(run.predictions)
        try:
            roc[f"{run.name} (AUROC {run.metrics['auroc']:.3f})"] = roc_curve(label, prob)
            pr[f"{run.name} (AP {run.metrics['average_precision']:.3f})"] = precision_recall_curve(
                label, prob
            )
        except UndefinedMetric as reason:
            log.warning("%s: no curves: %s", run.directory, reason)
    split = runs[0].metrics["split"]
    return {
        "roc": plots.roc_figure(roc, title=f"ROC curves ({split})"),
        "pr": plots.pr_figure(pr, title=f"Precision-recall curves ({split})"),
    }


def write_comparison(dirs: list[Path], output: Path, split: str = "test") -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv``, ``roc.png`` and ``pr.png`` to ``output``."""
    runs = load_runs(dirs, split)
    output = Path(output)
    written = {"csv": write_csv_atomic(comparison_frame(runs), output / "comparison.csv")}
    with atomic_path(output / "comparison.md") as partial:
        partial.write_text(comparison_markdown(runs), encoding="utf-8")
    written["markdown"] = output / "comparison.md"
    for name, figure in overlay_figures(runs).items():
        written[name] = save_figure(figure, output / f"{name}.png")
    return written
