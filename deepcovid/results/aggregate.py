"""Many evaluated runs as one result: runs grouped by model (backbone), their spread across
seeds and folds, pooled numbers (the concatenated out-of-fold and test predictions), paired
tests between the models, and the per-source table of leave-one-source-out runs.

Runs are never concatenated as if one model had scored each image several times: a model's
runs are summarized by the spread of their AUROCs and by their mean-score ensemble (each unique
test image once, scored by the runs' mean P(COVID)); cross-validation by each fold's AUROC on
its own out-of-fold images. Intervals resample patients (an image without a patient id is its
own cluster). Leave-one-source-out runs stay out of the per-model numbers: they are per source.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepcovid.metrics.bootstrap import bootstrap_interval
from deepcovid.metrics.discrimination import auroc, average_precision
from deepcovid.metrics.operating_points import (
    NO_INTERVAL,
    Interval,
    OperatingPoint,
    operating_point,
    unavailable_point,
)
from deepcovid.metrics.paired import (
    PairedAurocTest,
    auroc_test,
    compare_operating_points,
    delong_test,
    holm_adjust,
)
from deepcovid.metrics.summary import Evaluation, arrays, patient_ids
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.results.status import RunStatus
from deepcovid.utils.serialize import to_jsonable

POOLED_COLUMNS = ["run", "model", "split", "fold", "seed", "holdout_source", "path", "label",
                  "prob_covid", "patient_id"]  # fmt: skip


@dataclass
class EvaluatedRun:
    """One evaluated run: its name (its backbone, made unique where needed), folder,
    evaluation (which says its seed, fold and held-out source), its test (and, for a
    cross-validation fold, out-of-fold val) predictions, and whether its results are complete,
    stale or from an interrupted checkpoint."""

    name: str
    directory: Path
    evaluation: Evaluation
    test: pd.DataFrame
    oof: pd.DataFrame | None = None
    status: RunStatus = field(default_factory=RunStatus)

    @property
    def model(self) -> str:
        return self.evaluation.model.backbone


@dataclass(frozen=True)
class Spread:
    """A number across runs: mean, standard deviation (ddof 1), range."""

    n_runs: int
    mean: float | None
    sd: float | None
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True)
class Ensemble:
    """The mean-score ensemble of a model's runs: each unique test image scored by the mean
    P(COVID) of the runs that scored it (``partly_scored`` images by fewer than all). AUROC and
    AP over its ``n`` unique images with patient-bootstrap intervals; at each operating point,
    sensitivity and specificity at the mean of the runs' thresholds (each run chose its own on
    its val split)."""

    n: int
    n_runs: int
    auroc: float | None
    auroc_ci: Interval
    average_precision: float | None
    average_precision_ci: Interval
    points: list[OperatingPoint] = field(default_factory=list)
    partly_scored: int = 0
    undefined: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutOfFold:
    """Cross-validation: each fold run's AUROC on its own val (out-of-fold) images, across
    folds and seeds, over ``n`` unique images (out of fold once per seed);
    ``chosen_on_these`` when a run's tested checkpoint was picked on those images
    (optimistic)."""

    fold_auroc: Spread
    n: int
    n_seeds: int
    chosen_on_these: bool


@dataclass(frozen=True)
class ModelSummary:
    """One model, over its runs that held no source out: the spread of their test AUROCs,
    their mean-score ensemble and (with folds) their out-of-fold AUROCs."""

    model: str
    runs: list[str]
    test_auroc: Spread
    ensemble: Ensemble
    oof: OutOfFold | None = None


@dataclass(frozen=True)
class OperatingPointTest:
    """McNemar's tests of two models at one operating point (each at its threshold), over
    ``unit``s ("patient": clustered, "image": exact), Holm-adjusted across every McNemar test
    of the report (all pairs, points, sensitivity and specificity)."""

    point: str
    threshold_a: float
    threshold_b: float
    sensitivity_difference: float
    sensitivity_p: float
    specificity_difference: float
    specificity_p: float
    unit: str = "image"
    sensitivity_p_holm: float | None = None
    specificity_p_holm: float | None = None


@dataclass(frozen=True)
class PairedComparison:
    """Models a and b on the same test images (each: the mean P(COVID) of its runs): the
    headline AUROC difference a − b, its interval, p and Holm-adjusted p (across the pairs)
    from ``test`` (the paired patient bootstrap where patient ids exist, else DeLong's), the
    per-image DeLong test as a secondary column (its own Holm), and McNemar's tests."""

    a: str
    b: str
    n: int
    a_runs: list[str]  # the run folders of model a (their mean P(COVID) per image is compared)
    b_runs: list[str]
    auroc_a: float
    auroc_b: float
    auroc_difference: float
    test: str
    difference_ci: Interval
    p_value: float
    p_holm: float | None = None
    delong_difference_ci: Interval = NO_INTERVAL
    delong_p_value: float | None = None
    delong_p_holm: float | None = None
    operating_points: list[OperatingPointTest] = field(default_factory=list)


@dataclass(frozen=True)
class SourceResult:
    """One leave-one-source-out run: the held-out source and how the model did on it."""

    source: str
    model: str
    run: str
    n: int
    n_positive: int
    auroc: float | None
    auroc_ci: Interval
    sensitivity: float | None
    specificity: float | None
    note: str | None = None


@dataclass(frozen=True)
class Aggregate:
    """Everything ``comparison.json`` holds besides the per-run table."""

    models: list[ModelSummary]
    paired: list[PairedComparison]
    sources: list[SourceResult]
    resamples: int
    notes: list[str] = field(default_factory=list)
    confidence: float = 0.95  # of every interval, the runs' own and those computed here

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(self)


def spread(values: list[float | None]) -> Spread:
    known = np.array([v for v in values if v is not None], dtype=np.float64)
    if known.size == 0:
        return Spread(len(values), None, None, None, None)
    sd = float(known.std(ddof=1)) if known.size > 1 else None
    return Spread(len(values), float(known.mean()), sd, float(known.min()), float(known.max()))


def clusters_of(frame: pd.DataFrame) -> np.ndarray:
    """Patient id where known, else the image's path (one cluster across replicates)."""
    ids = patient_ids(frame)
    paths = frame["path"].astype(str)
    return (paths if ids is None else ids.astype(object).where(ids.notna(), paths)).to_numpy()


def discrimination(
    frame: pd.DataFrame, resamples: int, seed: int, confidence: float = 0.95
) -> dict[str, Any]:
    """AUROC and AP of one score per image with patient-bootstrap intervals, and the reasons
    (``undefined``) where one could not be had."""
    label, prob = arrays(frame)
    clusters = clusters_of(frame)
    values: dict[str, Any] = {}
    undefined: dict[str, str] = {}
    for name, statistic in (("auroc", auroc), ("average_precision", average_precision)):
        values[name], values[f"{name}_ci"] = None, NO_INTERVAL
        try:
            values[name] = statistic(label, prob)
            drawn = bootstrap_interval(
                label, prob, statistic, clusters, resamples, confidence, seed
            )
            values[f"{name}_ci"] = (drawn.low, drawn.high)
        except UndefinedMetric as reason:
            undefined[name if values[name] is None else f"{name}_ci"] = str(reason)
    return values | {"undefined": undefined}


def averaged_thresholds(runs: list[EvaluatedRun]) -> list[tuple[str, float | None, float | str]]:
    """(name, target, the runs' mean threshold) of each val-chosen operating point, then of
    the default cut-off (``fixed``); a point some run has no threshold for gets, instead of
    the mean, the reason (which runs, why)."""
    found: list[tuple[str, float | None, float | str]] = []
    for point in runs[0].evaluation.chosen_points:
        mine = [
            (r.name, next((p for p in r.evaluation.chosen_points if p.name == point.name), None))
            for r in runs
        ]
        missing = [
            f"{name}: {'no such point' if p is None else p.undefined.get('threshold')}"
            for name, p in mine
            if p is None or p.threshold is None
        ]
        mean = "no threshold from " + "; ".join(missing) if missing else None
        found.append(
            (point.name, point.target, mean or float(np.mean([p.threshold for _, p in mine])))
        )
    found.append(("fixed", None, float(np.mean([r.evaluation.threshold for r in runs]))))
    return found


def ensemble(
    runs: list[EvaluatedRun], resamples: int, seed: int, confidence: float = 0.95
) -> Ensemble:
    """The mean-score ensemble of ``runs`` on their unique test images."""
    scores = mean_scores(runs)
    scored_by = pd.concat([run.test for run in runs]).groupby("path").size()
    label, prob = arrays(scores)
    ids = patient_ids(scores)
    chosen_on = "the runs' thresholds averaged"
    points = []
    for name, target, threshold in averaged_thresholds(runs):
        if isinstance(threshold, str):
            points.append(unavailable_point(name, threshold, target, chosen_on))
            continue
        point = operating_point(
            label, prob, threshold, name, runs[0].evaluation.interval, confidence, target,
            chosen_on if name != "fixed" else None, None if ids is None else ids.to_numpy(),
            seed=seed,
        )  # fmt: skip
        points.append(point)
    return Ensemble(
        len(scores), len(runs), **discrimination(scores, resamples, seed, confidence),
        points=points, partly_scored=int((scored_by < len(runs)).sum()),
    )  # fmt: skip


def chosen_on_val(evaluation: Evaluation) -> bool:
    """Whether the tested checkpoint was picked on the val split: any but a last epoch's
    (``last.ckpt``, or ``last-epochNNN.ckpt`` of ``callbacks.model_checkpoint.select=last``)."""
    checkpoint = evaluation.model.checkpoint
    return checkpoint is None or not Path(checkpoint).name.startswith("last")


def fold_auroc(frame: pd.DataFrame) -> float | None:
    """The AUROC of one fold's out-of-fold predictions (None for a fold of one class)."""
    try:
        return auroc(*arrays(frame))
    except UndefinedMetric:
        return None


def out_of_fold(runs: list[EvaluatedRun]) -> OutOfFold | None:
    """Each fold run's AUROC on its own out-of-fold images (None without folds)."""
    folds = [run for run in runs if run.oof is not None]
    if not folds:
        return None
    return OutOfFold(
        spread([fold_auroc(run.oof) for run in folds]),
        pd.concat([run.oof for run in folds])["path"].nunique(),
        len({run.evaluation.model.seed for run in folds}),
        any(chosen_on_val(run.evaluation) for run in folds),
    )


def pooled_predictions(runs: list[EvaluatedRun]) -> pd.DataFrame:
    """``pooled_predictions.csv``: every run's test and out-of-fold predictions, one row each."""
    parts = []
    for run in runs:
        info = run.evaluation.model
        for split, frame in (("test", run.test), ("oof", run.oof)):
            if frame is None:
                continue
            part = frame.assign(
                run=run.name, model=run.model, split=split, fold=info.fold, seed=info.seed,
                holdout_source=info.holdout_source,
            )  # fmt: skip
            if "patient_id" not in part:
                part["patient_id"] = None
            parts.append(part[POOLED_COLUMNS])
    return pd.concat(parts, ignore_index=True)


def model_summaries(
    runs: list[EvaluatedRun], resamples: int, seed: int, confidence: float = 0.95
) -> list[ModelSummary]:
    """Per model, over its runs that held no source out (those are reported per source)."""
    kept = [run for run in runs if run.evaluation.model.holdout_source is None]
    summaries = []
    for model in dict.fromkeys(run.model for run in kept):
        mine = [run for run in kept if run.model == model]
        summaries.append(
            ModelSummary(
                model,
                [run.name for run in mine],
                spread([run.evaluation.auroc for run in mine]),
                ensemble(mine, resamples, seed, confidence),
                out_of_fold(mine),
            )
        )
    return summaries


def mean_scores(runs: list[EvaluatedRun]) -> pd.DataFrame:
    """Per test image of a model: label, patient and the mean P(COVID) over its runs."""
    frame = pd.concat([run.test for run in runs])
    keys = ["path", "label"]
    scores = frame.groupby(keys, sort=True)["prob_covid"].mean().reset_index()
    if "patient_id" in frame:
        ids = frame.drop_duplicates("path").set_index("path")["patient_id"]
        scores["patient_id"] = scores["path"].map(ids)
    return scores


def same_images(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]) -> str | None:
    """None when both frames hold the same (path, label) rows, else what differs."""
    left = set(zip(a["path"], a["label"], strict=True))
    right = set(zip(b["path"], b["label"], strict=True))
    if left == right:
        return None
    labels_a, labels_b = dict(left), dict(right)
    relabelled = [p for p in labels_a.keys() & labels_b.keys() if labels_a[p] != labels_b[p]]
    if relabelled:
        raise ValueError(
            f"{names[0]} and {names[1]} label the same images differently (e.g. "
            f"{sorted(relabelled)[:3]}): they were not evaluated on the same data"
        )
    only = len(left - right) + len(right - left)
    return (
        f"{names[0]} and {names[1]} were evaluated on different images ({only} differ, e.g. "
        f"{sorted(p for p, _ in left ^ right)[:2]}): no paired test"
    )


def operating_point_tests(
    label: np.ndarray, a: np.ndarray, b: np.ndarray, run_a: Evaluation, run_b: Evaluation,
    patient_id: np.ndarray | None = None,
) -> list[OperatingPointTest]:  # fmt: skip
    """McNemar's tests (patient-clustered with ids) at each operating point both models have a
    threshold for."""
    thresholds_b = {p.name: p.threshold for p in run_b.chosen_points if p.threshold is not None}
    shared = [(p.name, p.threshold, thresholds_b[p.name]) for p in run_a.chosen_points
              if p.threshold is not None and p.name in thresholds_b]  # fmt: skip
    shared.append(("fixed", run_a.threshold, run_b.threshold))
    tests = []
    for name, threshold_a, threshold_b in shared:
        found = compare_operating_points(label, a, b, threshold_a, threshold_b, patient_id)
        tests.append(
            OperatingPointTest(
                name, threshold_a, threshold_b, found.sensitivity.difference,
                found.sensitivity.p_value, found.specificity.difference,
                found.specificity.p_value, found.sensitivity.unit,
            )
        )  # fmt: skip
    return tests


def paired_comparisons(
    runs: list[EvaluatedRun], resamples: int, seed: int, notes: list[str], confidence: float = 0.95
) -> list[PairedComparison]:
    """Every pair of models on the same test images. Holm's adjustment runs over each family
    it reports: the headline AUROC tests across the pairs, the per-image DeLong tests across
    the pairs, and every McNemar test (pairs × points × sensitivity, specificity)."""
    models = list(dict.fromkeys(run.model for run in runs))
    scores = {m: mean_scores([r for r in runs if r.model == m]) for m in models}
    first_run = {m: next(r for r in runs if r.model == m).evaluation for m in models}
    runs_of = Counter(run.model for run in runs)
    folders = {m: [r.directory.name for r in runs if r.model == m] for m in models}
    found = []
    for a, b in combinations(models, 2):
        difference = same_images(scores[a], scores[b], (a, b))
        if difference is not None:
            notes.append(difference)
            continue
        label = scores[a]["label"].to_numpy(dtype=int)
        prob_a, prob_b = scores[a]["prob_covid"].to_numpy(), scores[b]["prob_covid"].to_numpy()
        ids = scores[a]["patient_id"].to_numpy() if "patient_id" in scores[a] else None
        delong, d = {}, None
        try:
            d = delong_test(label, prob_a, prob_b, confidence)
            delong = {"delong_difference_ci": (d.low, d.high), "delong_p_value": d.p_value}
        except UndefinedMetric as reason:
            notes.append(f"{a} vs {b}: no DeLong test ({reason})")
        try:
            headline = auroc_test(label, prob_a, prob_b, ids, n_resamples=resamples,
                                  confidence=confidence, seed=seed)  # fmt: skip
        except UndefinedMetric as reason:
            if d is None:
                continue
            notes.append(
                f"{a} vs {b}: no patient-clustered bootstrap ({reason}); its headline test is "
                "DeLong's per image, anti-conservative where patients repeat"
            )
            method = "DeLong (per image; no patient bootstrap)"
            headline = PairedAurocTest(d.auroc_a, d.auroc_b, d.difference, d.low, d.high,
                                       d.p_value, method)  # fmt: skip
        tests = []
        if runs_of[a] == 1 and runs_of[b] == 1:
            tests = operating_point_tests(label, prob_a, prob_b, first_run[a], first_run[b], ids)
        elif not any("McNemar" in note for note in notes):
            notes.append(
                "McNemar's tests only between models of one run each: the thresholds each run "
                "chose on its own val split do not apply to the mean P(COVID) of several runs"
            )
        found.append(
            PairedComparison(
                a, b, len(label), folders[a], folders[b], headline.auroc_a, headline.auroc_b,
                headline.difference, headline.method, (headline.low, headline.high),
                headline.p_value, **delong, operating_points=tests,
            )
        )  # fmt: skip
    if not found:
        return []
    holm = holm_adjust([p.p_value for p in found])
    delong_p = [p.delong_p_value for p in found]
    delong_holm = holm_adjust(delong_p) if None not in delong_p else [None] * len(found)
    mcnemar = [q for p in found for t in p.operating_points
               for q in (t.sensitivity_p, t.specificity_p)]  # fmt: skip
    mcnemar_holm = iter(holm_adjust(mcnemar).tolist()) if mcnemar else iter(())
    return [
        PairedComparison(**{
            **vars(p), "p_holm": float(h), "delong_p_holm": None if dh is None else float(dh),
            "operating_points": [
                OperatingPointTest(**{**vars(t), "sensitivity_p_holm": next(mcnemar_holm),
                                      "specificity_p_holm": next(mcnemar_holm)})
                for t in p.operating_points
            ],
        })
        for p, h, dh in zip(found, holm, delong_holm, strict=True)
    ]  # fmt: skip


def source_results(runs: list[EvaluatedRun]) -> list[SourceResult]:
    """The held-out source of each leave-one-source-out run and how the model did there."""
    found = []
    for run in runs:
        e = run.evaluation
        if e.model.holdout_source is None:
            continue
        point = e.point_at(e.threshold)
        note = (
            None
            if e.auroc is not None
            else (
                "one class only: "
                + ("sensitivity only" if e.counts.n_negative == 0 else "specificity only")
            )
        )
        found.append(
            SourceResult(
                e.model.holdout_source, run.model, run.name, e.counts.n, e.counts.n_positive,
                e.auroc, e.auroc_ci, point.sensitivity, point.specificity, note,
            )
        )  # fmt: skip
    return found


def aggregate(
    runs: list[EvaluatedRun], resamples: int = 1000, seed: int = 0
) -> tuple[Aggregate, pd.DataFrame]:
    """The :class:`Aggregate` of ``runs`` and the pooled predictions it was computed from, at
    the confidence the runs were evaluated at (runs at different ones are refused)."""
    levels = sorted({run.evaluation.confidence for run in runs})
    if len(levels) > 1:
        raise ValueError(
            f"the runs were evaluated at different confidence levels {levels}: evaluate them "
            "again at one (metrics.confidence) to compare them"
        )
    confidence = levels[0] if levels else 0.95
    table = pooled_predictions(runs)
    notes: list[str] = []
    paired = paired_comparisons(
        [r for r in runs if r.evaluation.model.holdout_source is None],
        resamples, seed, notes, confidence,
    )  # fmt: skip
    summaries = model_summaries(runs, resamples, seed, confidence)
    result = Aggregate(summaries, paired, source_results(runs), resamples, notes, confidence)
    return result, table
