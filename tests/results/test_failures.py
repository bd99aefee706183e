"""Failure cases: the most confident false positives and false negatives, checked against a
brute-force reading of the predictions, and the threshold they are read at."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
