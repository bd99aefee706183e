"""python -m deepcovid.report: one comparison table and overlay figures over several runs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepcovid.metrics.summary import MetricSettings, ModelInfo
from deepcovid.report import main
from deepcovid.results.comparison import find_run_dirs, load_runs
from deepcovid.results.evaluation import ThresholdSource, evaluate_predictions, write_evaluation

BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]


def fake_run(job: Path, backbone: str, seed: int) -> Path:
    """A run directory as a multirun job leaves it: an evaluation."""
    rng = np.random.default_rng(seed)

    def frame(n: int) -> pd.DataFrame:
        label = rng.integers(0, 2, n)
        prob = np.clip((0.2 + 0.1 * seed) * label + 0.6 * rng.random(n), 0, 1)
        return pd.DataFrame(
            {"path": [f"i{k}" for k in range(n)], "label": label, "prob_covid": prob}
        )

    test, val = frame(60), frame(30)
    settings = MetricSettings(bootstrap_resamples=20)
    thresholds = ThresholdSource(val, "the val split")
    evaluation = evaluate_predictions(test, thresholds, settings, 0.2, ModelInfo(backbone))
    write_evaluation(evaluation, test, val, job)
    return job


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multirun")
    for i, backbone in enumerate(BACKBONES):
        fake_run(root / f"{i}-{backbone}", backbone, i)
    return root


def test_multirun_folder_becomes_one_table_and_two_figures(sweep: Path, tmp_path: Path) -> None:
    main([str(sweep), "--output", str(tmp_path)])
    table = pd.read_csv(tmp_path / "comparison.csv")
    assert list(table["model"].unique()) == BACKBONES
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
    assert markdown.startswith("# Comparison of 4 models on the test split")
    assert "### val sensitivity ≥ 98 %" in markdown and "### Threshold 0.2" in markdown
    for backbone in BACKBONES:
        assert markdown.count(f"| {backbone} |") == 1 + 3 + 9  # summary, chosen, fixed
    for figure in ("roc.png", "pr.png"):
        assert (tmp_path / figure).stat().st_size > 10_000


def test_cli_default_output_and_several_run_dirs(sweep: Path) -> None:
    runs = [str(sweep / "0-resnet18"), str(sweep / "2-squeezenet")]
    result = subprocess.run(
        [sys.executable, "-m", "deepcovid.report", *runs],
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(sweep / "comparison" / "comparison.md") in result.stdout
    table = pd.read_csv(sweep / "comparison" / "comparison.csv")
    assert list(table["model"].unique()) == ["resnet18", "squeezenet"]


def test_natural_order_duplicate_names_and_errors(tmp_path: Path) -> None:
    for number in (10, 2):
        fake_run(tmp_path / f"{number}-resnet18", "resnet18", number % 3)
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
