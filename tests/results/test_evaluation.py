"""The one evaluation path: predictions → Evaluation → every file of a run's evaluation."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from deepcovid.data.settings import SplitSettings
from deepcovid.data.splits import DataRecord
from deepcovid.metrics.summary import Evaluation, MetricSettings, ModelInfo
from deepcovid.results.evaluation import (
    ValPredictions,
    evaluate_predictions,
    notes_for,
    read_evaluation,
    write_evaluation,
)

SETTINGS = MetricSettings(bootstrap_resamples=50)
MODEL = ModelInfo("resnet18", "best.ckpt")
PLOTS = ["roc", "pr", "confusion_matrix", "score_histogram", "reliability", "decision_curve"]


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


def run(test, val, tmp_path, **kwargs) -> Evaluation:
    source = ValPredictions(val, "the val split", reason=kwargs.pop("reason", ""))
    evaluation = evaluate_predictions(test, source, SETTINGS, 0.2, MODEL, **kwargs)
    write_evaluation(evaluation, test, val, tmp_path)
    return evaluation


def test_writes_every_file(tmp_path: Path) -> None:
    test, val = predictions(80, 0), predictions(40, 1)
    evaluation = run(test, val, tmp_path)
    assert read_evaluation(tmp_path).to_json() == evaluation.to_json()
    written = json.loads((tmp_path / "metrics" / "test.json").read_text())
    assert written["model"]["backbone"] == "resnet18"
    assert written["auroc"] == pytest.approx(roc_auc_score(test["label"], test["prob_covid"]))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "predictions" / "test.csv"), test)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "predictions" / "val.csv"), val)
    for name in PLOTS:
        with Image.open(tmp_path / "plots" / f"{name}.png") as image:
            assert image.format == "PNG" and min(image.size) > 200
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Results: resnet18 on the test split")
    assert f"{evaluation.auroc:.3f}" in report and "### By source" in report
    assert "patient-aware Wilson (on the design-effect-adjusted number of images)" in report
    youden = next(p for p in evaluation.chosen_points if p.name == "youden")
    assert f"{youden.counts.tp}/{youden.counts.tp + youden.counts.fn}" in report
    assert "## What a call means" in report and "| Scores | ECE | Brier |" in report
    for name in PLOTS:
        assert f"(plots/{name}.png)" in report
    assert not list(tmp_path.rglob("*.partial"))


def test_figures_draw_the_evaluation_they_are_given(tmp_path: Path) -> None:
    """The confusion matrix shows the counts of the model's threshold, and the ROC marks the
    val-chosen points: from the evaluation, not recomputed."""
    from deepcovid.results.figures import evaluation_figures

    test, val = predictions(60, 2), predictions(40, 3)
    evaluation = run(test, val, tmp_path)
    figures = evaluation_figures(evaluation, test)
    cells = [t.get_text() for t in figures["confusion_matrix"].axes[0].texts]
    c = evaluation.point_at(0.2).counts
    assert cells == [str(c.tn), str(c.fp), str(c.fn), str(c.tp)]
    marks = {line.get_label(): line for line in figures["roc"].axes[0].get_lines()}
    youden = next(p for p in evaluation.chosen_points if p.name == "youden")
    mark = next(line for name, line in marks.items() if name.startswith("max. Youden"))
    assert mark.get_xdata()[0] == pytest.approx(1 - youden.specificity)
    assert mark.get_ydata()[0] == pytest.approx(youden.sensitivity)


def test_one_class_test_split_still_writes_everything(tmp_path: Path) -> None:
    evaluation = run(predictions(10, 0, one_class=True), None, tmp_path, reason="no val")
    assert evaluation.auroc is None and "both classes" in evaluation.undefined["auroc"]
    for name in PLOTS:
        assert (tmp_path / "plots" / f"{name}.png").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "The AUROC was n/a" in report and "## Undefined quantities" in report
    assert "no threshold (no val)" in report
    assert not (tmp_path / "predictions" / "val.csv").exists()


def test_evaluating_val_itself_is_flagged(tmp_path: Path) -> None:
    val = predictions(40, 1)
    run(val, val, tmp_path, split="val")
    assert (tmp_path / "metrics" / "val.json").is_file()
    assert (tmp_path / "predictions" / "val.csv").is_file()
    assert "optimistic" in (tmp_path / "report.md").read_text()


def data_record(prevalence: float) -> DataRecord:
    return DataRecord(
        "/data", None, "0" * 64, 100, SplitSettings(), {}, {}, "oversample", prevalence
    )


def test_oversampling_prior_shift_and_a_small_val_split_are_said(tmp_path: Path) -> None:
    test, val = predictions(80, 0), predictions(16, 1)
    test["label"] = (np.arange(80) < 8).astype(int)  # 10 % COVID
    evaluation = run(test, val, tmp_path, data=data_record(0.5))
    report = (tmp_path / "report.md").read_text()
    assert "## Read these numbers with care" in report
    assert "trained at a COVID prevalence of 50.0 % (over-sampling), 5.00×" in report
    assert "shifted upwards" in report
    positives = int(val["label"].sum())
    assert f"holds {positives} COVID and {16 - positives} non-COVID images" in report
    # and the third: 8 COVID images of 4 patients, 2 each (> 20 % of the class per patient)
    assert len(evaluation.notes) == 3 and "cluster in few patients" in evaluation.notes[2]
    quiet = run(predictions(80, 0), predictions(60, 1), tmp_path / "q", data=data_record(0.5))
    assert not any("prevalence" in n for n in quiet.notes)  # 0.5 vs about 0.5: no shift
    # over-sampling the majority class shifts the other way, and is said too
    test["label"] = (np.arange(80) < 40).astype(int)  # 50 % COVID
    lower = run(test, predictions(60, 1), tmp_path / "d", data=data_record(1 / 6))
    (note,) = [n for n in lower.notes if "prevalence" in n]
    assert "16.7 % (over-sampling), 0.33× the 50.0 %" in note and "shifted downwards" in note


def test_the_small_val_note_and_the_datamodule_share_one_limit(monkeypatch) -> None:
    from deepcovid.data import datamodule, splits
    from deepcovid.results import evaluation

    val = predictions(30, 1)  # about 15 per class: below 20, above 10
    small = notes_for(predictions(80, 0), val, None, MODEL, "test")
    assert any("operating points rest on that few" in n for n in small)
    monkeypatch.setattr(evaluation, "MIN_VAL_PER_CLASS", 10)
    fewer = notes_for(predictions(80, 0), val, None, MODEL, "test")
    assert not any("operating points rest on that few" in n for n in fewer)
    assert datamodule.MIN_VAL_PER_CLASS is splits.MIN_VAL_PER_CLASS == 20
