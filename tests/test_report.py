"""python -m deepcovid.report: runs → one comparison (per run, across runs, pooled, paired,
per source), every aggregate number recomputable from pooled_predictions.csv."""

import json
import os
import re
import subprocess
import sys
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from deepcovid.metrics.paired import delong_test
from deepcovid.metrics.summary import MetricSettings, ModelInfo
from deepcovid.report import main, newest_multirun
from deepcovid.results.aggregate import aggregate
from deepcovid.results.comparison import find_run_dirs, forest_rows, load_runs
from deepcovid.results.evaluation import ValPredictions, evaluate_predictions, write_evaluation

BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]
TEST_LABELS = np.random.default_rng(0).integers(0, 2, 60)


def images(prefix: str, label: np.ndarray, strength: float, seed: int) -> pd.DataFrame:
    """Predictions of ``len(label)`` images, two per patient, separated by ``strength``."""
    rng = np.random.default_rng(seed)
    prob = np.clip(strength * label + (1 - strength) * rng.random(len(label)), 0, 1)
    return pd.DataFrame({
        "path": [f"{prefix}{k}.png" for k in range(len(label))],
        "label": label,
        "prob_covid": prob,
        "patient_id": [f"{prefix}p{k // 2}" for k in range(len(label))],
    })  # fmt: skip


def fake_run(
    job: Path,
    info: ModelInfo,
    strength: float,
    seed: int,
    test: pd.DataFrame | None = None,
    val: pd.DataFrame | None = None,
    confidence: float = 0.95,
) -> Path:
    """A run folder as a (multirun) job leaves it: its evaluation and predictions."""
    test = images("test/", TEST_LABELS, strength, seed) if test is None else test
    val = images(f"val{seed}/", TEST_LABELS[:30], strength, seed + 100) if val is None else val
    settings = MetricSettings(bootstrap_resamples=20, confidence=confidence)
    evaluation = evaluate_predictions(
        test, ValPredictions(val, "the val split"), settings, 0.2, info
    )
    write_evaluation(evaluation, test, val, job)
    return job


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four backbones on the same test images, resnet18 far better than squeezenet."""
    root = tmp_path_factory.mktemp("multirun")
    for i, (backbone, strength) in enumerate(zip(BACKBONES, (0.6, 0.3, 0.05, 0.4), strict=True)):
        fake_run(root / f"{i}-{backbone}", ModelInfo(backbone, seed=i), strength, i)
    return root


def test_multirun_folder_becomes_one_report(sweep: Path, tmp_path: Path) -> None:
    main([str(sweep), "--output", str(tmp_path), "--resamples", "50", "--no-wandb"])
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert list(table["model"].unique()) == BACKBONES
    pooled = pd.read_csv(tmp_path / "pooled_predictions.csv")  # the same columns mean the same
    assert table.groupby("run")["model"].first().to_dict() == (
        pooled.groupby("run")["model"].first().to_dict()
    )
    for i, backbone in enumerate(BACKBONES):
        metrics = json.loads((sweep / f"{i}-{backbone}" / "metrics" / "test.json").read_text())
        rows = table[table["model"] == backbone]
        assert len(rows) == len(metrics["fixed_points"]) + len(metrics["chosen_points"])
        assert rows["auroc"].iloc[0] == pytest.approx(metrics["auroc"])
        assert rows["auroc_low"].iloc[0] == pytest.approx(metrics["auroc_ci"][0])
        youden = next(p for p in metrics["chosen_points"] if p["name"] == "youden")
        row = rows[rows["operating_point"] == "youden"].iloc[0]
        assert row["specificity_high"] == pytest.approx(youden["specificity_ci"][1])
        assert row["tp"] == youden["counts"]["tp"]
    markdown = (tmp_path / "comparison.md").read_text()
    assert markdown.startswith("# Comparison of 4 runs on the test split")
    assert "### val sensitivity ≥ 98 %" in markdown and "### Threshold 0.2" in markdown
    assert "## Paired comparisons" in markdown and "## Across runs" not in markdown
    for figure in ("roc.png", "pr.png", "forest.png"):
        assert (tmp_path / figure).stat().st_size > 10_000


def test_paired_tests_are_delong_on_the_same_images_with_holm(sweep: Path, tmp_path: Path) -> None:
    main([str(sweep), "--output", str(tmp_path), "--resamples", "50", "--no-wandb"])
    report = json.loads((tmp_path / "comparison.json").read_text())
    pooled = pd.read_csv(tmp_path / "pooled_predictions.csv")
    assert len(report["paired"]) == 6  # 4 models, every pair
    first = next(p for p in report["paired"] if (p["a"], p["b"]) == ("resnet18", "squeezenet"))
    a = pooled[pooled["model"] == "resnet18"].sort_values("path")
    b = pooled[pooled["model"] == "squeezenet"].sort_values("path")
    expected = delong_test(
        a["label"].to_numpy(), a["prob_covid"].to_numpy(), b["prob_covid"].to_numpy()
    )
    assert first["n"] == 60 and (first["a_runs"], first["b_runs"]) == (
        ["0-resnet18"],
        ["2-squeezenet"],
    )
    assert first["auroc_difference"] == pytest.approx(expected.difference)
    assert first["delong_p_value"] == pytest.approx(expected.p_value)
    assert first["auroc_difference"] > 0.2 and first["delong_p_value"] < 0.01
    p_values = sorted(p["delong_p_value"] for p in report["paired"])
    holm = sorted(p["delong_p_holm"] for p in report["paired"])
    assert holm[0] == pytest.approx(min(1.0, 6 * p_values[0]))
    assert all(h >= p for h, p in zip(holm, p_values, strict=True))
    assert first["test"] == "patient bootstrap"  # the headline: patient ids exist
    low, high = first["difference_ci"]
    assert low < first["auroc_difference"] < high  # patients resampled, both models alike
    assert {t["point"] for t in first["operating_points"]} >= {"youden", "fixed"}


def test_folds_report_per_fold_out_of_fold_auroc_over_unique_images(tmp_path: Path) -> None:
    """Three folds × two backbones: the test AUROC's spread across folds and the folds'
    mean-score ensemble on the 60 unique test images (the old table: n = 180 pooled rows),
    each fold's AUROC on its out-of-fold images over the 90 unique ones, and a caveat that
    the checkpoint was chosen on them, all recomputable from pooled_predictions.csv."""
    root = tmp_path / "multirun"
    labels = np.random.default_rng(1).integers(0, 2, 90)
    folds = np.array_split(np.arange(90), 3)
    job = 0
    for backbone, strength in (("resnet18", 0.5), ("densenet121", 0.2)):
        for fold, members in enumerate(folds):
            info = ModelInfo(backbone, seed=7, fold=fold, num_folds=3)
            val = images("dev/", labels, strength, job).iloc[members]
            fake_run(root / f"{job}-{backbone}", info, strength, job, val=val)
            job += 1
    main([str(root), "--resamples", "50", "--no-wandb"])
    output = root / "comparison"
    report = json.loads((output / "comparison.json").read_text())
    pooled = pd.read_csv(output / "pooled_predictions.csv")
    for model in report["models"]:
        mine = pooled[pooled["model"] == model["model"]]
        oof = mine[mine["split"] == "oof"]
        assert sorted(oof["path"]) == sorted(f"dev/{k}.png" for k in range(90))
        per_fold = [roc_auc_score(f["label"], f["prob_covid"]) for _, f in oof.groupby("run")]
        assert model["oof"]["n"] == 90 and model["oof"]["chosen_on_these"]
        assert model["oof"]["fold_auroc"]["mean"] == pytest.approx(np.mean(per_fold))
        test = mine[mine["split"] == "test"].groupby("path")
        mean_score = test["prob_covid"].mean()
        assert model["ensemble"]["n"] == 60 and model["test_auroc"]["n_runs"] == 3
        assert model["ensemble"]["auroc"] == pytest.approx(
            roc_auc_score(test["label"].first(), mean_score)
        )
        low, high = model["ensemble"]["auroc_ci"]
        assert low <= model["ensemble"]["auroc"] <= high
    markdown = (output / "comparison.md").read_text()
    assert "## Across runs (seeds, folds)" in markdown and "## Out of fold" in markdown
    assert "| 90 | yes: best by val |" in markdown
    assert "callbacks.model_checkpoint.select=last" in markdown and "50 resamples" in markdown
    (pair,) = report["paired"]
    assert pair["operating_points"] == [] and "McNemar" in report["notes"][0]
    assert newest_multirun(tmp_path) == root


def test_seeds_by_backbones_every_ensemble_number_counts_unique_images(tmp_path: Path) -> None:
    """2 seeds × 2 backbones on 60 test images: every number across runs is over the 60
    unique images (the old table printed "pooled test AUROC …, n = 120": two seeds' rows)."""
    for job, (backbone, seed) in enumerate(product(("resnet18", "squeezenet"), (1, 2))):
        fake_run(tmp_path / f"{job}-{backbone}", ModelInfo(backbone, seed=seed), 0.3, job)
    main([str(tmp_path), "--resamples", "20", "--no-wandb"])
    output = tmp_path / "comparison"
    markdown = (output / "comparison.md").read_text()
    across = markdown.split("## Across runs")[1].split("\n## ")[0]
    assert re.findall(r"n = (\d+)", across) == ["60", "60"] and "Pooled" not in markdown
    assert "| resnet18 | max. Youden's J on val |" in across
    table = pd.read_csv(output / "comparison.csv")
    ensembles = table[table["kind"] == "ensemble"]
    assert set(ensembles["run"]) == {
        "resnet18 (mean score of 2 runs)",
        "squeezenet (mean score of 2 runs)",
    }
    assert set(ensembles["n"]) == {60} and set(table[table["kind"] == "run"]["n"]) == {60}
    report = json.loads((output / "comparison.json").read_text())
    assert [m["ensemble"]["n"] for m in report["models"]] == [60, 60]
    assert [p["n"] for p in report["paired"]] == [60]
    summary, _ = aggregate(load_runs([tmp_path]), resamples=20)
    labels = [label for label, _, _ in forest_rows(load_runs([tmp_path]), summary)][:2]
    assert labels == [
        "resnet18 (mean score of 2 runs), n = 60",
        "squeezenet (mean score of 2 runs), n = 60",
    ]


def test_leave_one_source_out_table_and_no_pairs_across_sources(tmp_path: Path) -> None:
    sites = {"site-a": np.array([0, 1] * 20), "site-b": np.zeros(30, dtype=int)}
    for job, (site, labels) in enumerate(sites.items()):
        test = images(f"{site}/", labels, 0.5, job)
        fake_run(
            tmp_path / f"{job}-resnet18", ModelInfo("resnet18", holdout_source=site), 0.5, job, test
        )
    failed = tmp_path / "2-resnet18"  # a job that stopped before its evaluation
    failed.mkdir()
    (failed / "train.log").write_text("SplitError: …")
    main([str(tmp_path), "--resamples", "50", "--no-wandb"])
    report = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    assert report["unevaluated"] == [str(failed)]
    by_source = {s["source"]: s for s in report["sources"]}
    assert by_source["site-a"]["n"] == 40 and by_source["site-a"]["auroc"] is not None
    assert by_source["site-b"]["auroc"] is None
    assert by_source["site-b"]["note"] == "one class only: specificity only"
    assert report["paired"] == []
    markdown = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "## Leave one source out" in markdown and "specificity only" in markdown
    assert "**1 job(s) left no test evaluation**" in markdown and "`2-resnet18`" in markdown


def test_different_test_images_get_a_note_and_relabelled_images_an_error(tmp_path: Path) -> None:
    fake_run(tmp_path / "0-resnet18", ModelInfo("resnet18"), 0.5, 0)
    other = images("elsewhere/", TEST_LABELS, 0.5, 1)
    fake_run(tmp_path / "1-resnet50", ModelInfo("resnet50"), 0.5, 1, other)
    main([str(tmp_path), "--resamples", "20", "--no-wandb"])
    report = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    assert report["paired"] == [] and "different images" in report["notes"][0]
    flipped = images("test/", 1 - TEST_LABELS, 0.5, 2)
    fake_run(tmp_path / "1-resnet50", ModelInfo("resnet50"), 0.5, 1, flipped)
    with pytest.raises(ValueError, match="label the same images differently"):
        main([str(tmp_path), "--resamples", "20", "--no-wandb"])


def test_cli_default_output_and_several_run_dirs(sweep: Path) -> None:
    runs = [str(sweep / "0-resnet18"), str(sweep / "2-squeezenet")]
    result = subprocess.run(
        [sys.executable, "-m", "deepcovid.report", *runs, "--resamples", "20", "--no-wandb"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(sweep / "comparison" / "comparison.md") in result.stdout
    table = pd.read_csv(sweep / "comparison" / "comparison.csv")
    assert list(table["model"].unique()) == ["resnet18", "squeezenet"]


def test_natural_order_duplicate_names_and_errors(tmp_path: Path) -> None:
    for number in (10, 2):
        fake_run(tmp_path / f"{number}-resnet18", ModelInfo("resnet18"), 0.3, number)
    assert [d.name for d in find_run_dirs([tmp_path])] == ["2-resnet18", "10-resnet18"]
    assert [r.name for r in load_runs([tmp_path])] == [
        "resnet18 (2-resnet18)",
        "resnet18 (10-resnet18)",
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="deepcovid.evaluate"):
        find_run_dirs([empty])
    with pytest.raises(FileNotFoundError, match="no such run"):
        find_run_dirs([tmp_path / "missing"])
    with pytest.raises(SystemExit, match="no run folders given"):
        newest_multirun(tmp_path / "nothing")


def test_the_table_goes_to_a_wandb_run_of_the_sweeps_group(sweep: Path, tmp_path: Path) -> None:
    """Offline (no key in tests): the report run's files hold the comparison table."""
    main([str(sweep), "--output", str(tmp_path), "--resamples", "20"])
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (table,) = (run / "files" / "media" / "table").glob("comparison_*.table.json")
    logged = json.loads(table.read_text())
    assert "auroc" in logged["columns"] and len(logged["data"]) == len(
        pd.read_csv(tmp_path / "comparison.csv")
    )
    (records,) = run.glob("run-*.wandb")  # the run's protobuf log names its group
    assert sweep.name.encode() in records.read_bytes() and b"report" in records.read_bytes()


def test_an_undefined_clustered_bootstrap_is_a_note_not_a_lost_report(tmp_path: Path) -> None:
    # every COVID test image is one patient's: most patient resamples hold no COVID image
    test = images("test/", TEST_LABELS, 0.5, 0)
    test["patient_id"] = np.where(TEST_LABELS == 1, "the-covid-patient", test["patient_id"])
    fake_run(tmp_path / "0-resnet18", ModelInfo("resnet18"), 0.5, 0, test)
    fake_run(tmp_path / "1-resnet50", ModelInfo("resnet50"), 0.3, 1, test.assign(
        prob_covid=images("test/", TEST_LABELS, 0.3, 1)["prob_covid"]
    ))  # fmt: skip
    main([str(tmp_path), "--resamples", "20", "--no-wandb"])
    report = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    (pair,) = report["paired"]
    assert pair["test"].startswith("DeLong (per image") and pair["p_value"] is not None
    assert any("no patient-clustered bootstrap" in note for note in report["notes"])


def test_intervals_and_labels_at_the_runs_confidence(tmp_path: Path) -> None:
    for i, backbone in enumerate(["resnet18", "resnet50"]):
        fake_run(tmp_path / f"{i}-{backbone}", ModelInfo(backbone), 0.2, i, confidence=0.8)
    main([str(tmp_path), "--resamples", "20", "--no-wandb"])
    report = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    (pair,) = report["paired"]
    label = TEST_LABELS
    a, b = (images("test/", label, 0.2, seed)["prob_covid"].to_numpy() for seed in (0, 1))
    assert tuple(pair["delong_difference_ci"]) == pytest.approx(
        (delong_test(label, a, b, 0.8).low, delong_test(label, a, b, 0.8).high)
    )
    markdown = (tmp_path / "comparison" / "comparison.md").read_text()
    assert "80 % CI" in markdown and "95 % CI" not in markdown
    fake_run(tmp_path / "1-resnet50", ModelInfo("resnet50"), 0.2, 1, confidence=0.95)
    with pytest.raises(ValueError, match="different confidence levels"):
        main([str(tmp_path), "--resamples", "20", "--no-wandb"])


def test_a_checkpoint_newer_than_the_results_marks_the_run_stale(tmp_path: Path) -> None:
    """A resumed run stopped before its test: its old test.json is reported as stale."""
    runs = tmp_path / "runs"
    fresh = fake_run(runs / "0-fresh", ModelInfo("resnet18", seed=0), 0.5, 0)
    stale = fake_run(runs / "1-stale", ModelInfo("resnet50", seed=1), 0.5, 1)
    for run, offset in ((fresh, -60), (stale, +60)):  # written before / after the results
        checkpoint = run / "checkpoints" / "last.ckpt"
        checkpoint.parent.mkdir()
        checkpoint.write_bytes(b"weights")
        evaluated_at = (run / "metrics" / "test.json").stat().st_mtime
        os.utime(checkpoint, (evaluated_at + offset, evaluated_at + offset))
    main([str(runs), "--output", str(tmp_path / "out"), "--resamples", "20", "--no-wandb"])
    table = pd.read_csv(tmp_path / "out" / "comparison.csv").groupby("run").first()
    assert table["status"].to_dict() == {"resnet18": "complete", "resnet50": "stale"}
    assert str(stale / "checkpoints" / "last.ckpt") in table.loc["resnet50", "status_reason"]
    markdown = (tmp_path / "out" / "comparison.md").read_text()
    assert "**1 run(s) with results that are not complete**" in markdown
    assert "| resnet50 | stale |" in markdown and "| resnet18 | complete |" in markdown
