"""Compare evaluated runs: any multirun of backbones × seeds × folds × held-out sources, or
several run folders, in one report.

A run is a directory holding ``metrics/<split>.json`` and ``predictions/<split>.csv`` (written
by ``python -m deepcovid.evaluate`` or by the final test of ``python -m deepcovid.train``); what
it was (backbone, seed, fold, held-out source) comes from its evaluation, which read it from
the checkpoint. Written: ``comparison.md`` / ``.csv`` / ``.json`` (a model of several runs
also as its mean-score ensemble), ``pooled_predictions.csv`` (every run's rows, from which each
number is recomputable), ``roc.png`` (with the band across each model's runs), ``pr.png`` and
``forest.png``, and ``checklist.md`` (:mod:`deepcovid.results.checklist_fill`) over the runs.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deepcovid.metrics.discrimination import precision_recall_curve, roc_curve
from deepcovid.metrics.operating_points import OperatingPoint, with_bounds
from deepcovid.metrics.predictions import read_predictions
from deepcovid.metrics.summary import arrays
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.results import figures
from deepcovid.results.aggregate import Aggregate, EvaluatedRun, ModelSummary, Spread, aggregate
from deepcovid.results.checklist_fill import write_checklist
from deepcovid.results.evaluation import read_evaluation
from deepcovid.results.markdown import ci_label, number, table, threshold_text, with_ci
from deepcovid.results.names import INTERVAL_NAMES, rule_name
from deepcovid.results.status import COMPLETE, run_status
from deepcovid.utils.files import (
    save_figure,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)

log = logging.getLogger(__name__)


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


def unevaluated_jobs(dirs: list[Path], runs: list[Path]) -> list[Path]:
    """Job folders of the multiruns in ``dirs`` (those with a ``train.log``) that hold no
    evaluation: failed or unfinished jobs, which the comparison must not silently drop."""
    jobs = {log.parent for d in map(Path, dirs) for log in d.glob("*/train.log")}
    return sorted((j for j in jobs if j not in runs), key=natural_key)


def load_runs(dirs: list[Path], split: str = "test") -> list[EvaluatedRun]:
    """The evaluated runs under ``dirs``: a run repeating another's name gets its folder name."""
    runs = []
    for run_dir in find_run_dirs(dirs, split):
        predictions_path = run_dir / "predictions" / f"{split}.csv"
        if not predictions_path.is_file():
            raise FileNotFoundError(f"{predictions_path}: missing (metrics without predictions)")
        evaluation = read_evaluation(run_dir, split)
        oof_path = run_dir / "predictions" / "val.csv"
        oof = (
            read_predictions(oof_path)
            if evaluation.model.num_folds and oof_path.is_file()
            else None
        )
        status = run_status(run_dir, evaluation.model.checkpoint, split)
        if status.state != COMPLETE:
            log.warning("%s: %s results: %s", run_dir, status.state, status.reason)
        runs.append(
            EvaluatedRun(
                evaluation.model.backbone,
                run_dir,
                evaluation,
                read_predictions(predictions_path),
                oof,
                status,
            )
        )
    repeated = {name for name, count in Counter(r.name for r in runs).items() if count > 1}
    for run in runs:
        if run.name in repeated:
            run.name = f"{run.name} ({run.directory.name})"
    return runs


def point_columns(point: OperatingPoint) -> dict[str, Any]:
    """An operating point's columns of the comparison CSV: what it is, then its scalars."""
    return {
        "operating_point": point.name,
        "target": point.target,
        "chosen_on": point.chosen_on,
        **point.scalars(),
    }


def comparison_frame(runs: list[EvaluatedRun]) -> pd.DataFrame:
    """One row per run and operating point, every number with its interval bounds."""
    rows = []
    for run in runs:
        e = run.evaluation
        common = {
            "run": run.name,  # the model, made unique where several runs share it
            "kind": "run",  # or "ensemble": a model's runs' mean score per unique image
            "model": e.model.backbone,  # as in pooled_predictions.csv and the summary
            "run_dir": str(run.directory),
            "status": run.status.state,
            "status_reason": run.status.reason or None,
            "seed": e.model.seed,
            "fold": e.model.fold,
            "holdout_source": e.model.holdout_source,
            "split": e.split,
            **e.scalars(points=False),
        }
        rows += [common | point_columns(p) for p in [*e.fixed_points, *e.chosen_points]]
    frame = pd.DataFrame(rows)
    return with_int_counts(frame)


def with_int_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """The confusion counts as integers, empty (not NaN) where a point has no threshold."""
    counts = ["tp", "fp", "tn", "fn"]
    frame[counts] = frame[counts].astype("Int64")  # empty, not NaN, where no threshold
    return frame


def ensemble_name(summary: ModelSummary) -> str:
    """How a model's mean-score ensemble is named in every output."""
    return f"{summary.model} (mean score of {summary.ensemble.n_runs} runs)"


def ensemble_frame(summary: Aggregate, split: str) -> pd.DataFrame:
    """The comparison CSV's rows of each model of several runs: its mean-score ensemble on its
    unique images, one row per operating point (at the runs' thresholds averaged)."""
    rows = []
    for s in summary.models:
        if len(s.runs) < 2:
            continue
        e = s.ensemble
        common = {
            "run": ensemble_name(s),
            "kind": "ensemble",
            "model": s.model,
            "split": split,
            "n": e.n,
            **with_bounds("auroc", e.auroc, e.auroc_ci),
            **with_bounds("average_precision", e.average_precision, e.average_precision_ci),
        }
        rows += [common | point_columns(p) for p in e.points]
    return pd.DataFrame(rows)


def rate_cells(point: OperatingPoint) -> list[str]:
    """Threshold, sensitivity and specificity (with intervals) of one operating point."""
    return [
        threshold_text(point.threshold),
        with_ci(point.sensitivity, point.sensitivity_ci, as_percent=True),
        with_ci(point.specificity, point.specificity_ci, as_percent=True),
    ]


def p_text(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def spread_text(sp: Spread) -> str:
    """``0.870 ± 0.010 (0.857–0.881)``, or n/a."""
    if sp.mean is None:
        return "n/a"
    return f"{sp.mean:.3f} ± {number(sp.sd)} ({sp.minimum:.3f}–{sp.maximum:.3f})"


def across_runs_section(summary: Aggregate) -> list[str]:
    """Per model of several runs: their test AUROC (mean ± sd, range) and their mean-score
    ensemble on the unique test images, with its operating points."""
    several = [s for s in summary.models if len(s.runs) > 1]
    if not several:
        return []
    ci = ci_label(summary.confidence)
    rows = [[s.model, len(s.runs), spread_text(s.test_auroc),
             with_ci(s.ensemble.auroc, s.ensemble.auroc_ci) + f", n = {s.ensemble.n}",
             with_ci(s.ensemble.average_precision, s.ensemble.average_precision_ci)]
            for s in several]  # fmt: skip
    points = [[s.model, rule_name(p), *rate_cells(p)] for s in several for p in s.ensemble.points]
    partly = [f"- {s.model}: {s.ensemble.partly_scored} test image(s) scored by fewer than its "
              f"{len(s.runs)} runs: their mean is over the runs that scored them."
              for s in several if s.ensemble.partly_scored]  # fmt: skip
    unchosen = [f"- {s.model}, {rule_name(p)}: {p.undefined['threshold']}."
                for s in several for p in s.ensemble.points if p.threshold is None]  # fmt: skip
    return [
        "## Across runs (seeds, folds)",
        "",
        "Per model, its runs that held no source out (leave-one-source-out runs are reported "
        "per source): their test AUROC (mean ± sd, range), and their **mean-score ensemble**: "
        "each unique test image once, scored by the mean P(COVID) of the runs; n = unique "
        "images; intervals resample patients "
        f"({summary.resamples} resamples). The runs' predictions are never pooled as one "
        "model's.",
        "",
        table(
            [
                "Model",
                "Runs",
                "Test AUROC across runs",
                f"Ensemble AUROC ({ci})",
                f"Ensemble AP ({ci})",
            ],
            rows,
        ),  # fmt: skip
        "",
        *partly,
        *([""] if partly else []),
        "The ensemble's sensitivity and specificity at the mean of its runs' thresholds (each "
        "run chose its own on its val split; the fixed cut-off as configured):",
        "",
        table(
            [
                "Model",
                "Operating point",
                "Threshold (runs' mean)",
                f"Sensitivity ({ci})",
                f"Specificity ({ci})",
            ],
            points,
        ),  # fmt: skip
        "",
        *unchosen,
        *([""] if unchosen else []),
    ]


def out_of_fold_section(summary: Aggregate) -> list[str]:
    """Cross-validation: each fold's AUROC on its out-of-fold images, and whether the tested
    checkpoint was chosen on them."""
    folded = [s for s in summary.models if s.oof is not None]
    if not folded:
        return []
    rows = [[s.model, s.oof.fold_auroc.n_runs, s.oof.n_seeds, spread_text(s.oof.fold_auroc),
             s.oof.n, "yes: best by val" if s.oof.chosen_on_these else "no: last epoch"]
            for s in folded]  # fmt: skip
    caveat = (
        [
            "**The tested checkpoint of each fold was chosen on these same images** (the best "
            "by the monitored val metric), so these AUROCs are optimistic. For an unbiased "
            "out-of-fold estimate train with `callbacks.model_checkpoint.select=last` (a fixed "
            "epoch budget).",
            "",
        ]
        if any(s.oof.chosen_on_these for s in folded)
        else []
    )
    return [
        "## Out of fold (cross-validation)",
        "",
        "Each fold run's AUROC on its own val images (its out-of-fold predictions): mean ± sd "
        "(range) across folds and seeds. Images: unique out-of-fold images (each is out of "
        "fold once per seed).",
        "",
        *caveat,
        table(
            [
                "Model",
                "Fold runs",
                "Seeds",
                "Out-of-fold AUROC per fold",
                "Images",
                "Checkpoint chosen on these images",
            ],
            rows,
        ),  # fmt: skip
        "",
    ]


def paired_section(summary: Aggregate) -> list[str]:
    """The headline AUROC tests (patient-clustered where patient ids exist) with Holm's,
    per-image DeLong as a labelled secondary column, and McNemar's tests with Holm's."""
    if not summary.paired:
        notes = [f"- {note}" for note in summary.notes]
        return ["## Paired comparisons", "", "No pair of models on the same test images.",
                "", *notes, ""] if notes else []  # fmt: skip
    rows = []
    for p in summary.paired:
        delong = "–"
        if p.delong_p_value is not None:
            delong = (
                f"{with_ci(p.auroc_difference, p.delong_difference_ci)}, "
                f"p {p_text(p.delong_p_value)} (Holm {p_text(p.delong_p_holm)})"
            )
        rows.append([f"{p.a} − {p.b}", p.n, f"{p.auroc_a:.3f} − {p.auroc_b:.3f}", p.test,
                     with_ci(p.auroc_difference, p.difference_ci), p_text(p.p_value),
                     p_text(p.p_holm), delong])  # fmt: skip
    mcnemar = [
        [f"{p.a} − {p.b}", t.point, f"{t.threshold_a:.3g} / {t.threshold_b:.3g}", t.unit,
         f"{100 * t.sensitivity_difference:+.1f} %", p_text(t.sensitivity_p),
         p_text(t.sensitivity_p_holm), f"{100 * t.specificity_difference:+.1f} %",
         p_text(t.specificity_p), p_text(t.specificity_p_holm)]
        for p in summary.paired for t in p.operating_points
    ]  # fmt: skip
    columns = ["Pair", "Operating point", "Thresholds", "McNemar over", "Δ sensitivity", "p",
               "p (Holm)", "Δ specificity", "p", "p (Holm)"]  # fmt: skip
    mcnemar_lines = [
        "Sensitivity and specificity: McNemar's test, each model at its own threshold of the "
        "operating point; over patients (Durkalski's clustered McNemar, exact sign-flip "
        "p-value) where patient ids exist, else McNemar's exact test over images. Holm's "
        "adjustment covers every McNemar test in this table.",
        "",
        table(columns, mcnemar),
        "",
    ] if mcnemar else []  # fmt: skip
    return [
        "## Paired comparisons",
        "",
        "Every pair of models on the same test images (each model: the mean P(COVID) of its "
        "runs). AUROC difference, headline test: the paired patient bootstrap (the same "
        f"patients resampled for both models; {summary.resamples} resamples) where patient "
        "ids exist, else DeLong's test; its p is Holm-adjusted across the pairs. DeLong's "
        "test per image is shown second, with its own Holm adjustment: it treats every image "
        "as independent and rejects too often when patients have several images.",
        "",
        table(
            [
                "Pair",
                "Images",
                "AUROC",
                "Test",
                f"Difference ({ci_label(summary.confidence)})",
                "p",
                "p (Holm)",
                "Per-image DeLong: difference, p (Holm)",
            ],
            rows,
        ),  # fmt: skip
        "",
        *mcnemar_lines,
        *[f"- {note}" for note in summary.notes],
        "",
    ]


def sources_section(summary: Aggregate) -> list[str]:
    if not summary.sources:
        return []
    rows = [[s.source, s.model, s.n, s.n_positive,
             s.note or with_ci(s.auroc, s.auroc_ci), number(s.sensitivity), number(s.specificity)]
            for s in summary.sources]  # fmt: skip
    return [
        "## Leave one source out",
        "",
        "Each source tested by a model trained on all the others. A source of one class gets "
        "sensitivity or specificity, never an AUROC.",
        "",
        table(
            [
                "Held-out source",
                "Model",
                "Images",
                "COVID",
                f"AUROC ({ci_label(summary.confidence)})",
                "Sensitivity",
                "Specificity",
            ],
            rows,
        ),  # fmt: skip
        "",
    ]


def same_point(point: OperatingPoint) -> tuple[str, float | None]:
    """What makes points of two runs the same: the rule, or a fixed point's threshold."""
    return point.name, point.threshold if point.name == "fixed" else None


def point_tables(
    runs: list[EvaluatedRun],
    references: list[OperatingPoint],
    heading: Callable[[OperatingPoint], str],
    columns: list[str],
) -> list[str]:
    """One table per reference point: every run's sensitivity and specificity at it."""
    lines = []
    for reference in references:
        rows = [
            [run.name, *rate_cells(point)]
            for run in runs
            for point in [*run.evaluation.fixed_points, *run.evaluation.chosen_points]
            if same_point(point) == same_point(reference)
        ]
        lines += [f"### {heading(reference)}", "", table(columns, rows), ""]
    return lines


def incomplete_section(runs: list[EvaluatedRun]) -> list[str]:
    """The runs whose results are stale or from an interrupted checkpoint, with why."""
    flagged = [r for r in runs if r.status.state != COMPLETE]
    if not flagged:
        return []
    return [
        f"**{len(flagged)} run(s) with results that are not complete** (still compared):",
        "",
        *(f"- `{r.name}`: {r.status.state}: {r.status.reason}" for r in flagged),
        "",
    ]


def comparison_markdown(
    runs: list[EvaluatedRun], summary: Aggregate, missing: list[Path] = ()
) -> str:
    """The comparison: discrimination per run, across runs, paired tests, per source, then
    sensitivity and specificity at the val-chosen and fixed thresholds; first, the jobs that
    left no evaluation."""
    first = runs[0].evaluation
    ci = ci_label(first.confidence)
    columns = ["Model", "Threshold", f"Sensitivity ({ci})", f"Specificity ({ci})"]
    lines = [
        f"# Comparison of {len(runs)} runs on the {first.split} split",
        "",
        f"Intervals: {ci}, percentile bootstrap over {first.bootstrap.unit}s "
        f"({first.bootstrap.n_resamples} resamples) for AUROC and AP, "
        f"{INTERVAL_NAMES[first.interval_used]} for sensitivity and specificity. An image is "
        "called COVID when P(COVID) ≥ the threshold.",
        "",
        *(
            [
                f"**{len(missing)} job(s) left no {first.split} evaluation** (failed or "
                "unfinished; their train.log says why): "
                + ", ".join(f"`{m.name}`" for m in missing),
                "",
            ]
            if missing
            else []
        ),  # fmt: skip
        *incomplete_section(runs),
        table(
            [
                "Run",
                "Status",
                "Images",
                "COVID",
                "non-COVID",
                f"AUROC ({ci})",
                f"AP ({ci})",
                "ECE",
            ],  # fmt: skip
            [
                [
                    r.name,
                    r.status.state,
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
        *across_runs_section(summary),
        *out_of_fold_section(summary),
        *paired_section(summary),
        *sources_section(summary),
        "## Thresholds chosen on the validation split",
        "",
    ]
    lines += point_tables(runs, first.chosen_points, rule_name, columns)
    lines += ["## Fixed thresholds", ""]
    lines += point_tables(runs, first.fixed_points, lambda p: f"Threshold {p.threshold:g}", columns)
    return "\n".join(lines).rstrip() + "\n"


def overlay_figures(runs: list[EvaluatedRun]) -> dict[str, Figure]:
    """``roc`` (per model: its runs' mean curve and their band, or its one curve; a
    leave-one-source-out run on its own) and ``pr``."""
    by_model: dict[str, list] = {}
    pr = {}
    for run in runs:
        label, prob = arrays(run.test)
        held_out = run.evaluation.model.holdout_source
        key = run.model if held_out is None else f"{run.model}: held-out {held_out}"
        try:
            curves = roc_curve(label, prob), precision_recall_curve(label, prob)
            by_model.setdefault(key, []).append(curves[0])
            pr[f"{run.name} (AP {number(run.evaluation.average_precision)})"] = curves[1]
        except UndefinedMetric as reason:
            log.warning("%s: no curves: %s", run.directory, reason)
    split = runs[0].evaluation.split
    return {
        "roc": figures.roc_band_figure(by_model, title=f"ROC curves ({split})"),
        "pr": figures.pr_figure(pr, title=f"Precision-recall curves ({split})"),
    }


def forest_rows(runs: list[EvaluatedRun], summary: Aggregate) -> list[tuple[str, float, tuple]]:
    """(label, AUROC, interval) per model (a model of several runs: their mean-score
    ensemble on its n unique images), per held-out source, and per run."""
    rows = [(f"{ensemble_name(s)}, n = {s.ensemble.n}" if len(s.runs) > 1 else s.model,
             s.ensemble.auroc, s.ensemble.auroc_ci) for s in summary.models]  # fmt: skip
    rows += [(f"{s.model}: {s.source}", s.auroc, s.auroc_ci) for s in summary.sources]
    if any(len(s.runs) > 1 for s in summary.models):
        rows += [(f"  {r.name}", r.evaluation.auroc, r.evaluation.auroc_ci) for r in runs]
    return [row for row in rows if row[1] is not None]


def log_to_wandb(frame: pd.DataFrame, output: Path, group: str) -> None:
    """The comparison table as a ``wandb.Table`` in a ``report`` run of the sweep's group."""
    import wandb

    from deepcovid.utils.tracking import resolve_wandb_mode

    mode = resolve_wandb_mode("auto")
    if mode == "disabled":
        return
    run = wandb.init(project="deepcovid", group=group, job_type="report", name=f"{group}-report",
                     dir=str(output), mode=mode)  # fmt: skip
    run.log({"comparison": wandb.Table(dataframe=frame.astype(object).where(frame.notna(), None))})
    run.finish()


def write_comparison(
    dirs: list[Path], output: Path, split: str = "test", resamples: int = 1000, wandb: bool = True
) -> dict[str, Path]:
    """Write the comparison files to ``output`` (see the module docstring)."""
    runs = load_runs(dirs, split)
    missing = unevaluated_jobs(dirs, [r.directory for r in runs])
    for job in missing:
        log.warning("%s: no %s evaluation (failed or unfinished job), not compared", job, split)
    summary, pooled = aggregate(runs, resamples)
    output = Path(output)
    parts = [comparison_frame(runs), ensemble_frame(summary, split)]
    frame = with_int_counts(pd.concat([p for p in parts if len(p)], ignore_index=True))
    records = frame.replace({np.nan: None}).to_dict(orient="records")
    written = {
        "csv": write_csv_atomic(frame, output / "comparison.csv"),
        "json": write_json_atomic(
            {"runs": records, "unevaluated": [str(m) for m in missing], **summary.to_json()},
            output / "comparison.json",
        ),
        "pooled": write_csv_atomic(pooled, output / "pooled_predictions.csv"),
        "markdown": write_text_atomic(
            comparison_markdown(runs, summary, missing), output / "comparison.md"
        ),
    }
    for name, figure in overlay_figures(runs).items():
        written[name] = save_figure(figure, output / f"{name}.png")
    written["forest"] = save_figure(
        figures.forest_figure(
            forest_rows(runs, summary), f"AUROC ({ci_label(summary.confidence)})"
        ),
        output / "forest.png",
    )
    written["checklist"] = write_checklist([r.directory for r in runs], output, split)
    if wandb:
        log_to_wandb(frame, output, Path(dirs[0]).resolve().name)
    return written
