"""The failure cases a run's final test writes (callbacks/failures.py through the evaluation
callback): exactly the top false positives and negatives of its predictions, drawn and cited."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from deepcovid.metrics.predictions import read_predictions
from deepcovid.metrics.summary import Evaluation
from deepcovid.results.failures import failure_threshold
from tests.results.test_failures import brute_force


def test_final_test_writes_the_true_top_mistakes(tiny_run: Path) -> None:
    """failures/failure_cases.csv holds exactly the top false positives and negatives of
    predictions/test.csv at its threshold; the figure is written and report.md points to it."""
    cases = pd.read_csv(tiny_run / "failures" / "failure_cases.csv")
    predictions = read_predictions(tiny_run / "predictions" / "test.csv")
    threshold = float(cases["threshold"].iloc[0])
    evaluation = Evaluation.from_json(json.loads((tiny_run / "metrics" / "test.json").read_text()))
    assert (threshold, cases["operating_point"].iloc[0]) == failure_threshold(evaluation, "youden")
    assert set(cases["threshold"]) == {threshold}
    assert not cases.empty  # the tiny model errs on some images
    assert list(zip(cases["kind"], cases["path"], strict=True)) == brute_force(
        predictions, threshold, 8
    )
    by_path = predictions.set_index("path")
    assert np.array_equal(cases["prob_covid"], by_path.loc[cases["path"], "prob_covid"])
    figure = tiny_run / "failures" / "failure_cases.png"
    assert Image.open(figure).size[0] > 400
    report = (tiny_run / "report.md").read_text()
    assert "## Failure cases" in report and "failures/failure_cases.csv" in report
    assert "Grad-CAM heatmaps" in report  # the run chose no explainer: Grad-CAM
    assert "false positives by highest P(COVID), false negatives by lowest" in report
