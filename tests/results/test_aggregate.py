"""results/aggregate.py: a model's runs are summarized by their spread and their mean-score
ensemble on the unique test images, never by concatenating their scores; out-of-fold numbers
per fold; leave-one-source-out runs per source only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from deepcovid.metrics.operating_points import unavailable_point
from deepcovid.metrics.summary import MetricSettings, ModelInfo
from deepcovid.results.aggregate import EvaluatedRun, aggregate
from deepcovid.results.evaluation import ValPredictions, evaluate_predictions

SETTINGS = MetricSettings(bootstrap_resamples=20)


def scored(prefix: str, label: np.ndarray, shift: float, rng: np.random.Generator) -> pd.DataFrame:
    """One model's P(COVID) of ``label``'s images (two per patient), its log-odds moved by
    ``shift``: runs of one backbone that separate the classes alike (each image as hard for
    every run, seeded by the image) but are calibrated apart."""
    hardness = np.random.default_rng(len(label)).normal(0, 1.2, len(label))
    logit = 1.2 * (2 * label - 1) + hardness + rng.normal(0, 0.5, len(label)) + shift
    return pd.DataFrame({
        "path": [f"{prefix}{k}.png" for k in range(len(label))],
        "label": label,
        "prob_covid": 1 / (1 + np.exp(-logit)),
        "patient_id": [f"{prefix}p{k // 2}" for k in range(len(label))],
    })  # fmt: skip


def run(
    name: str, info: ModelInfo, test: pd.DataFrame, val: pd.DataFrame, oof: bool = False
) -> EvaluatedRun:
    evaluation = evaluate_predictions(test, ValPredictions(val, "val"), SETTINGS, 0.5, info)
    return EvaluatedRun(name, Path(name), evaluation, test, val if oof else None)


def seeds(model: str, n_runs: int, label: np.ndarray, seed: int = 0) -> list[EvaluatedRun]:
    """``n_runs`` seeds of ``model`` on the same test images, each calibrated differently."""
    rng = np.random.default_rng(seed)
    found = []
    for k in range(n_runs):
        shift = float(rng.normal(0, 2.0))
        test = scored("test/", label, shift, rng)
        val = scored(f"val{k}/", label[:80], shift, rng)
        found.append(run(f"{k}-{model}", ModelInfo(model, seed=k), test, val))
    return found


def test_a_models_runs_are_their_mean_score_ensemble_on_unique_images() -> None:
    """The issue's case: 10 runs × 155 images. Concatenating them mixed ten calibrations
    (the old pooled AUROC, far below every run); the ensemble scores each image once."""
    label = np.random.default_rng(1).integers(0, 2, 155)
    runs = seeds("resnet18", 10, label)
    summary, pooled = aggregate(runs, resamples=50)
    (model,) = summary.models
    ensemble = model.ensemble
    run_aurocs = [r.evaluation.auroc for r in runs]
    mean_score = np.mean([r.test["prob_covid"] for r in runs], axis=0)
    concatenated = roc_auc_score(pooled["label"], pooled["prob_covid"])
    assert concatenated < min(run_aurocs) - 0.05  # what the old table printed, n = 1550
    assert (ensemble.n, ensemble.n_runs, ensemble.partly_scored) == (155, 10, 0)
    assert ensemble.auroc == pytest.approx(roc_auc_score(label, mean_score))
    assert ensemble.average_precision == pytest.approx(average_precision_score(label, mean_score))
    assert ensemble.auroc > min(run_aurocs)
    low, high = ensemble.auroc_ci
    assert low < ensemble.auroc < high
    assert model.test_auroc.mean == pytest.approx(np.mean(run_aurocs))
    points = {p.name: p for p in ensemble.points}
    youden = np.mean([p.threshold for r in runs for p in r.evaluation.chosen_points
                      if p.name == "youden"])  # fmt: skip
    assert points["youden"].threshold == pytest.approx(youden)
    assert points["youden"].chosen_on == "the runs' thresholds averaged"
    called = mean_score >= youden
    assert points["youden"].sensitivity == pytest.approx(called[label == 1].mean())
    assert points["fixed"].threshold == 0.5 and points["fixed"].counts.tp + points[
        "fixed"
    ].counts.fn == int(label.sum())


def test_images_scored_by_some_runs_only_are_counted() -> None:
    label = np.random.default_rng(2).integers(0, 2, 40)
    runs = seeds("resnet18", 2, label)
    runs[1].test = runs[1].test.iloc[:30]
    (model,) = aggregate(runs, resamples=20)[0].models
    assert (model.ensemble.n, model.ensemble.partly_scored) == (40, 10)


def test_a_point_some_run_has_no_threshold_for_says_which_and_why() -> None:
    runs = seeds("resnet18", 2, np.random.default_rng(6).integers(0, 2, 40))
    points = runs[1].evaluation.chosen_points
    youden = next(k for k, p in enumerate(points) if p.name == "youden")
    points[youden] = unavailable_point("youden", "on val: the scores do not separate")
    (model,) = aggregate(runs, resamples=20)[0].models
    point = next(p for p in model.ensemble.points if p.name == "youden")
    assert point.threshold is None and point.sensitivity is None
    assert point.undefined["threshold"] == (
        "no threshold from 1-resnet18: on val: the scores do not separate"
    )


def folds(checkpoint: str) -> list[EvaluatedRun]:
    """3 folds × 2 seeds of 90 development images (each out of fold once per seed)."""
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 90)
    test_label = rng.integers(0, 2, 50)
    found = []
    for seed in (1, 2):
        shift = float(rng.normal(0, 2.0))
        dev = scored("dev/", label, shift, rng)
        for fold, members in enumerate(np.array_split(np.arange(90), 3)):
            info = ModelInfo("resnet18", f"run/checkpoints/{checkpoint}", (), seed, fold, 3)
            test = scored("test/", test_label, shift, rng)
            found.append(run(f"{seed}-{fold}", info, test, dev.iloc[members], oof=True))
    return found


def test_out_of_fold_auroc_is_per_fold_over_unique_images_and_says_how_chosen() -> None:
    runs = folds("best-epoch007.ckpt")
    (model,) = aggregate(runs, resamples=20)[0].models
    oof = model.oof
    per_fold = [roc_auc_score(r.oof["label"], r.oof["prob_covid"]) for r in runs]
    assert (oof.n, oof.n_seeds, oof.fold_auroc.n_runs) == (90, 2, 6)  # old: n = 180 rows
    assert oof.fold_auroc.mean == pytest.approx(np.mean(per_fold))
    assert oof.fold_auroc.sd == pytest.approx(np.std(per_fold, ddof=1))
    assert oof.chosen_on_these
    (last,) = aggregate(folds("last-epoch019.ckpt"), resamples=20)[0].models
    assert not last.oof.chosen_on_these
    assert model.ensemble.n == 50


def test_leave_one_source_out_runs_stay_out_of_the_models_numbers() -> None:
    label = np.random.default_rng(4).integers(0, 2, 60)
    runs = seeds("resnet18", 2, label)
    rng = np.random.default_rng(5)
    held = scored("site-b/", np.array([0, 1] * 20), 0.0, rng)
    runs.append(run("loso", ModelInfo("resnet18", holdout_source="site-b"), held, held))
    summary, _ = aggregate(runs, resamples=20)
    (model,) = summary.models
    assert model.runs == ["0-resnet18", "1-resnet18"]  # old: the LOSO run too
    assert (model.ensemble.n, model.test_auroc.n_runs) == (60, 2)  # old: n = 160 pooled rows
    assert [s.source for s in summary.sources] == ["site-b"]
