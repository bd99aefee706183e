"""write_evaluation: every file of a run's evaluation, from predictions frames."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deepcovid.evaluation import write_evaluation
from PIL import Image
from sklearn.metrics import roc_auc_score

from deepcovid.metrics.summary import MetricSettings

SETTINGS = MetricSettings(bootstrap_resamples=50)
PLOTS = ["roc", "pr", "confusion_matrix", "score_histogram", "reliability"]


def predictions(n: int, seed: int, one_class: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.zeros(n, dtype=int) if one_class else rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "path": [f"/data/img{seed}_{i}.png" for i in range(n)],
            "label": label,
            "prob_covid": np.clip(0.4 * label + 0.6 * rng.random(n), 0, 1),
            "patient_id": [f"p{i // 2}" for i in range(n)],
            "source": rng.choice(["site A", "site B"], n),
        }
    )


def test_writes_every_file(tmp_path: Path) -> None:
    test, val = predictions(80, 0), predictions(40, 1)
    model = {"backbone": "resnet18", "checkpoint": "best.ckpt"}
    metrics = write_evaluation(test, val, SETTINGS, 0.2, tmp_path, model=model)
    written = json.loads((tmp_path / "metrics" / "test.json").read_text())
    assert written == metrics and written["model"] == model
    assert written["auroc"] == pytest.approx(roc_auc_score(test["label"], test["prob_covid"]))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "predictions" / "test.csv"), test)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "predictions" / "val.csv"), val)
    for name in PLOTS:
        with Image.open(tmp_path / "plots" / f"{name}.png") as image:
            assert image.format == "PNG" and min(image.size) > 200
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Results: resnet18 on the test split")
    assert f"{written['auroc']:.3f}" in report and "### By source" in report
    youden = next(p for p in written["operating_points"] if p["name"] == "youden")
    assert f"{youden['tp']}/{youden['tp'] + youden['fn']}" in report
    for name in PLOTS:
        assert f"(plots/{name}.png)" in report
    assert not list(tmp_path.rglob("*.partial"))


def test_one_class_test_split_still_writes_everything(tmp_path: Path) -> None:
    metrics = write_evaluation(
        predictions(10, 0, one_class=True), None, SETTINGS, 0.2, tmp_path, val_reason="no val"
    )
    assert metrics["auroc"] is None and "both classes" in metrics["undefined"]["auroc"]
    for name in PLOTS:
        assert (tmp_path / "plots" / f"{name}.png").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "The AUROC was n/a" in report and "## Undefined quantities" in report
    assert "no threshold (no val)" in report
    assert not (tmp_path / "predictions" / "val.csv").exists()


def test_evaluating_val_itself_is_flagged(tmp_path: Path) -> None:
    val = predictions(40, 1)
    write_evaluation(val, val, SETTINGS, 0.2, tmp_path, split="val")
    assert (tmp_path / "metrics" / "val.json").is_file()
    assert (tmp_path / "predictions" / "val.csv").is_file()
    assert "optimistic" in (tmp_path / "report.md").read_text()
