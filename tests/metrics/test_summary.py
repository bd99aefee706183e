"""The metrics/<split>.json content: values against scikit-learn/statsmodels, edge cases."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from deepcovid.metrics.summary import PAPER_THRESHOLDS, MetricSettings, summarize

FAST = MetricSettings(bootstrap_resamples=50, seed=1)
REQUIRED = {
    "auroc",
    "auroc_ci",
    "average_precision",
    "average_precision_ci",
    "ece",
    "n_positive",
    "n_negative",
    "operating_points",
}
POINT_KEYS = {"threshold", "sensitivity", "sensitivity_ci", "specificity", "specificity_ci"}
POINT_KEYS |= {"tp", "fp", "tn", "fn"}


def frame(n: int, seed: int, **columns) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    prob = np.clip(0.35 * label + 0.65 * rng.random(n), 0, 1)
    data = {"path": [f"img{i}.png" for i in range(n)], "label": label, "prob_covid": prob}
    return pd.DataFrame(data | columns)


def strict_json(summary: dict) -> dict:
    return json.loads(json.dumps(summary, allow_nan=False))  # NaN would not be valid JSON


def test_values_match_references() -> None:
    test, val = frame(120, 0), frame(60, 1)
    summary = strict_json(summarize(test, val, FAST, threshold=0.2))
    assert summary.keys() >= REQUIRED
    label, prob = test["label"].to_numpy(), test["prob_covid"].to_numpy()
    assert summary["auroc"] == pytest.approx(roc_auc_score(label, prob), abs=1e-6)
    assert summary["average_precision"] == pytest.approx(
        average_precision_score(label, prob), abs=1e-6
    )
    assert summary["auroc_ci"][0] < summary["auroc"] < summary["auroc_ci"][1]
    assert (summary["n_positive"], summary["n_negative"]) == (label.sum(), (label == 0).sum())
    fixed = [p for p in summary["operating_points"] if p["chosen_on"] is None]
    assert [p["threshold"] for p in fixed] == list(PAPER_THRESHOLDS)  # 0.2 only once
    for point in summary["operating_points"]:
        assert point.keys() >= POINT_KEYS
        called = prob >= point["threshold"]
        tp = int((called & (label == 1)).sum())
        assert point["tp"] == tp and point["fn"] == label.sum() - tp
        expected = proportion_confint(tp, label.sum(), method="wilson")
        assert point["sensitivity_ci"] == pytest.approx(list(expected))


def test_thresholds_are_chosen_on_val_and_applied_to_test() -> None:
    test, val = frame(120, 0), frame(60, 1)
    summary = summarize(test, val, FAST, threshold=0.2)
    chosen = {p["name"]: p for p in summary["operating_points"] if p["chosen_on"] == "val"}
    assert set(chosen) == {"target_sensitivity", "youden", "target_specificity"}
    on_val = {p["name"]: p for p in summary["validation"]["operating_points"]}
    assert on_val["target_sensitivity"]["sensitivity"] >= 0.98
    assert on_val["target_specificity"]["specificity"] >= 0.90
    for name, point in chosen.items():
        assert point["threshold"] == on_val[name]["threshold"]
        assert point["threshold"] in set(val["prob_covid"])  # a val score, not a test score
        assert point["tp"] + point["fn"] == summary["n_positive"]


def test_patient_bootstrap_and_subgroups() -> None:
    n = 90
    test = frame(
        n,
        2,
        patient_id=[f"p{i // 3}" for i in range(n)],
        source=["a", "b", "c"] * 30,
        finding=[None] * n,
    )
    test.loc[test["source"] == "c", "label"] = 0  # a one-class subgroup
    summary = strict_json(summarize(test, None, FAST, threshold=0.5))
    assert summary["bootstrap"]["unit"] == "patient" and summary["n_patients"] == 30
    assert set(summary["subgroups"]) == {"source"}  # finding is all empty
    groups = {g["value"]: g for g in summary["subgroups"]["source"]}
    assert groups["c"]["auroc"] is None and "both classes" in groups["c"]["undefined"]["auroc"]
    rows = test[test["source"] == "a"]
    assert groups["a"]["auroc"] == pytest.approx(roc_auc_score(rows["label"], rows["prob_covid"]))
    assert groups["a"]["operating_point"]["threshold"] == 0.5


@pytest.mark.parametrize(
    ("label", "prob"),
    [
        ([1], [0.7]),  # n = 1
        ([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.9]),  # all one class
        ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]),  # all tied
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]),  # perfect separation
    ],
)
def test_degenerate_test_and_val_never_crash(label: list, prob: list) -> None:
    test = pd.DataFrame({"path": [f"x{i}" for i in range(len(label))], "label": label})
    test["prob_covid"] = prob
    summary = strict_json(summarize(test, test, FAST, threshold=0.2))
    for key in ("auroc", "auroc_ci", "average_precision", "average_precision_ci"):
        value = summary[key]
        undefined = value is None or (isinstance(value, list) and None in value)
        assert undefined == (key in summary["undefined"])  # every missing number says why
    for point in summary["operating_points"]:
        for key in ("threshold", "sensitivity", "specificity"):
            assert (point[key] is None) == (key in point["undefined"])


def test_no_val_split_leaves_chosen_points_undefined() -> None:
    summary = summarize(frame(30, 0), None, FAST, 0.2, val_reason="the data has no val split")
    chosen = [p for p in summary["operating_points"] if p["chosen_on"]]
    assert len(chosen) == 3 and all(p["threshold"] is None for p in chosen)
    assert all(p["undefined"]["threshold"] == "the data has no val split" for p in chosen)
    assert summary["validation"] is None


def test_model_threshold_is_added_and_settings_are_checked() -> None:
    summary = summarize(frame(30, 0), None, FAST, threshold=0.35)
    fixed = [p["threshold"] for p in summary["operating_points"] if not p["chosen_on"]]
    assert 0.35 in fixed and fixed == sorted(fixed)
    with pytest.raises(ValueError, match="metrics.interval"):
        MetricSettings(interval="exact")
    with pytest.raises(ValueError, match="metrics.target_sensitivity"):
        MetricSettings(target_sensitivity=98)
    with pytest.raises(ValueError, match="metrics.thresholds"):
        MetricSettings(thresholds=[0.2, 20])
