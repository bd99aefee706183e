"""comparison.md / .json: the paired tests' headline is patient-clustered where patient ids
exist, per-image DeLong a labelled secondary column, Holm over every test of each family."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepcovid.metrics.paired import auroc_test, delong_test
from deepcovid.metrics.predictions import read_predictions
from deepcovid.metrics.summary import ModelInfo
from deepcovid.report import main
from deepcovid.results.evaluation import read_evaluation
from tests.test_report import BACKBONES, fake_run


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three single-run models on the same 60 test images of 30 patients."""
    root = tmp_path_factory.mktemp("multirun")
    for i, (backbone, strength) in enumerate(zip(BACKBONES[:3], (0.6, 0.3, 0.05), strict=True)):
        fake_run(root / f"{i}-{backbone}", ModelInfo(backbone, seed=i), strength, i)
    main([str(root), "--bootstrap-resamples", "200", "--no-wandb"])
    return root


def test_headline_is_the_patient_bootstrap_and_delong_is_second(report: Path) -> None:
    summary = json.loads((report / "comparison" / "comparison.json").read_text())
    pair = next(p for p in summary["paired"] if (p["a"], p["b"]) == ("resnet18", "squeezenet"))
    a = read_predictions(report / "0-resnet18" / "predictions" / "test.csv").sort_values("path")
    b = read_predictions(report / "2-squeezenet" / "predictions" / "test.csv").sort_values("path")
    label, ids = a["label"].to_numpy(), a["patient_id"].to_numpy()
    prob_a, prob_b = a["prob_covid"].to_numpy(), b["prob_covid"].to_numpy()
    boot = auroc_test(label, prob_a, prob_b, ids, n_resamples=200)
    assert pair["test"] == "patient bootstrap"
    assert pair["p_value"] == pytest.approx(boot.p_value)
    assert pair["difference_ci"] == pytest.approx([boot.low, boot.high])
    assert pair["delong_p_value"] == pytest.approx(delong_test(label, prob_a, prob_b).p_value)
    markdown = (report / "comparison" / "comparison.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| Pair | Images"))
    assert header.index("Test") < header.index("p (Holm)") < header.index("Per-image DeLong")
    assert "| resnet18 − squeezenet | 60 | " in markdown and "| patient bootstrap |" in markdown


def test_holm_covers_every_mcnemar_test(report: Path) -> None:
    summary = json.loads((report / "comparison" / "comparison.json").read_text())
    tests = [t for p in summary["paired"] for t in p["operating_points"]]
    p_values = [t[k] for t in tests for k in ("sensitivity_p", "specificity_p")]
    holm = [t[k] for t in tests for k in ("sensitivity_p_holm", "specificity_p_holm")]
    assert len(tests) >= 3 * 2 and all(t["unit"] == "patient" for t in tests)  # pairs × points
    smallest = int(np.argmin(p_values))
    assert holm[smallest] == pytest.approx(min(1.0, len(p_values) * p_values[smallest]))
    assert all(h >= p for h, p in zip(holm, p_values, strict=True))
    markdown = (report / "comparison" / "comparison.md").read_text()
    assert "Durkalski's clustered McNemar" in markdown and "| patient |" in markdown


def test_csv_rows_are_each_runs_scalars(report: Path) -> None:
    """comparison.csv holds, per run and operating point, the evaluation's own flat keys."""
    frame = pd.read_csv(report / "comparison" / "comparison.csv")
    evaluation = read_evaluation(report / "0-resnet18")
    rows = frame[frame["run_dir"] == str(report / "0-resnet18")]
    for point in [*evaluation.fixed_points, *evaluation.chosen_points]:
        row = rows[(rows["operating_point"] == point.name)
                   & (rows["threshold"] == point.threshold)].iloc[0]  # fmt: skip
        expected = evaluation.scalars(points=False) | point.scalars()
        assert row[list(expected)].tolist() == pytest.approx(
            [np.nan if v is None else v for v in expected.values()], nan_ok=True
        )
