"""Failure cases: the most confident false positives and false negatives, checked against a
brute-force reading of the predictions, and as the final test of a run writes them."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepcovid.metrics.predictions import read_predictions
from deepcovid.metrics.summary import Evaluation
from deepcovid.results.failures import FAILURE_COLUMNS, failure_cases, failure_threshold


def brute_force(frame: pd.DataFrame, threshold: float, count: int) -> list[tuple[str, str]]:
    """(kind, path) of the top mistakes, found by scanning every image."""
    rows = list(frame.itertuples(index=False))
    fps = [r for r in rows if r.label == 0 and r.prob_covid >= threshold]
    fns = [r for r in rows if r.label == 1 and r.prob_covid < threshold]
    fps.sort(key=lambda r: (-r.prob_covid, r.path))
    fns.sort(key=lambda r: (r.prob_covid, r.path))
    return [("FP", r.path) for r in fps[:count]] + [("FN", r.path) for r in fns[:count]]


def test_the_most_confident_mistakes_of_each_kind_in_order() -> None:
    rng = np.random.default_rng(3)
    prob = rng.random(200).round(2)  # many ties: broken by path
    frame = pd.DataFrame(
        {
            "path": [f"/d/img{i:03d}.png" for i in range(200)],
            "label": rng.integers(0, 2, 200),
            "prob_covid": prob,
            "source": "x",
        }  # fmt: skip
    )
    cases = failure_cases(frame, 0.4, 5, "youden, chosen on val")
    assert list(cases.columns) == FAILURE_COLUMNS
    assert list(zip(cases["kind"], cases["path"], strict=True)) == brute_force(frame, 0.4, 5)
    assert cases["rank"].tolist() == [1, 2, 3, 4, 5] * 2
    assert (cases["threshold"] == 0.4).all()
    assert failure_cases(frame, 0.4, 0, "default").empty
    at_cut = frame.assign(prob_covid=0.4, label=0)  # P(COVID) == threshold is called COVID
    assert set(failure_cases(at_cut, 0.4, 3, "default")["kind"]) == {"FP"}


def test_threshold_of_an_operating_point_or_the_default(tiny_run: Path) -> None:
    """A rule's threshold chosen on val; the default one, named so, where val gave none (the
    tiny run has both kinds)."""
    stored = json.loads((tiny_run / "metrics" / "test.json").read_text())
    evaluation = Evaluation.from_json(stored)
    found = {p["threshold"] is None for p in stored["chosen_points"]}
    assert found == {True, False}
    for point in stored["chosen_points"]:
        name = point["name"]
        expected = (
            (stored["threshold"], f"default, as val gave no {name} threshold")
            if point["threshold"] is None
            else (point["threshold"], f"{name}, chosen on val")
        )
        assert failure_threshold(evaluation, name) == expected
    assert failure_threshold(evaluation, "default") == (stored["threshold"], "default")
    with pytest.raises(ValueError, match="failures.operating_point='best'"):
        failure_threshold(evaluation, "best")


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
