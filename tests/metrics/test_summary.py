"""The typed Evaluation: values against scikit-learn/statsmodels, the JSON round trip, edge
cases."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from deepcovid.metrics.intervals import proportion_with_interval
from deepcovid.metrics.summary import (
    PAPER_THRESHOLDS,
    Evaluation,
    MetricSettings,
    ModelInfo,
    summarize,
)
from tests.metrics.test_intervals import reference_interval

FAST = MetricSettings(bootstrap_resamples=50, seed=1)
MODEL = ModelInfo("resnet18", "best.ckpt")


def frame(n: int, seed: int, **columns) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    prob = np.clip(0.35 * label + 0.65 * rng.random(n), 0, 1)
    data = {"path": [f"img{i}.png" for i in range(n)], "label": label, "prob_covid": prob}
    return pd.DataFrame(data | columns)


def evaluate(test, val, settings=FAST, threshold=0.2, **kwargs) -> Evaluation:
    return summarize(test, val, settings, threshold, MODEL, **kwargs)


def strict_json(evaluation: Evaluation) -> dict:
    return json.loads(json.dumps(evaluation.to_json(), allow_nan=False))  # NaN: invalid JSON


def test_values_match_references() -> None:
    test, val = frame(120, 0), frame(60, 1)
    e = evaluate(test, val)
    label, prob = test["label"].to_numpy(), test["prob_covid"].to_numpy()
    assert e.auroc == pytest.approx(roc_auc_score(label, prob), abs=1e-6)
    assert e.average_precision == pytest.approx(average_precision_score(label, prob), abs=1e-6)
    assert e.auroc_ci[0] < e.auroc < e.auroc_ci[1]
    assert (e.counts.n_positive, e.counts.n_negative) == (label.sum(), (label == 0).sum())
    assert e.calibration.brier.value == pytest.approx(brier_score_loss(label, prob))
    assert [p.threshold for p in e.fixed_points] == list(PAPER_THRESHOLDS)  # 0.2 only once
    assert e.interval_used == "wilson"  # no patient ids: per image
    for point in [*e.fixed_points, *e.chosen_points]:
        called = prob >= point.threshold
        tp = int((called & (label == 1)).sum())
        assert point.counts.tp == tp and point.counts.fn == label.sum() - tp
        expected = reference_interval(tp, label.sum())
        assert point.sensitivity_ci == pytest.approx(expected)
        se, sp, pi = point.sensitivity, point.specificity, label.mean()
        assert point.ppv.value == pytest.approx(se * pi / (se * pi + (1 - sp) * (1 - pi)))
        assert point.ppv.low <= point.ppv.value <= point.ppv.high
        if sp < 1:
            assert point.lr_positive.value == pytest.approx(se / (1 - sp))
        else:
            assert point.lr_positive is None and "infinite" in point.undefined["lr_positive"]
    assert e.decision_curve.n == 120 and e.decision_curve.prevalence == pytest.approx(label.mean())


def test_json_round_trip_gives_the_same_object() -> None:
    test = frame(80, 3, patient_id=[f"p{i // 2}" for i in range(80)], source=["a", "b"] * 40)
    e = evaluate(test, frame(40, 4))
    back = Evaluation.from_json(strict_json(e))
    assert back.to_json() == e.to_json()
    assert back.fixed_points[0].counts == e.fixed_points[0].counts
    assert back.calibration.slope == e.calibration.slope
    np.testing.assert_array_equal(back.calibration.bins.count, e.calibration.bins.count)
    assert back.subgroups["source"][1].point.threshold == 0.2


def test_thresholds_are_chosen_on_val_and_applied_to_test() -> None:
    test, val = frame(120, 0), frame(60, 1)
    e = evaluate(test, val, chosen_on="site val", val_source="this site's val split")
    chosen = {p.name: p for p in e.chosen_points}
    assert set(chosen) == {"target_sensitivity", "youden", "target_specificity"}
    assert {p.chosen_on for p in e.chosen_points} == {"site val"}
    on_val = {p.name: p for p in e.validation.points}
    assert e.validation.source == "this site's val split" and e.validation.counts.n == 60
    assert on_val["target_sensitivity"].sensitivity >= 0.98
    assert on_val["target_specificity"].specificity >= 0.90
    for name, point in chosen.items():
        assert point.threshold == on_val[name].threshold
        assert point.threshold in set(val["prob_covid"])  # a val score, not a test score
        assert point.counts.tp + point.counts.fn == e.counts.n_positive
    assert {r.method for r in e.calibration.recalibrated} == {"platt", "temperature"}


def test_patient_aware_intervals_and_subgroups() -> None:
    n = 90
    test = frame(
        n,
        2,
        patient_id=[f"p{i // 3}" for i in range(n)],
        source=["a", "b", "c"] * 30,
        finding=[None] * n,
    )
    test.loc[test["source"] == "c", "label"] = 0  # a one-class subgroup
    e = evaluate(test, None, threshold=0.5)
    assert e.bootstrap.unit == "patient" and e.counts.n_patients == 30
    point = e.point_at(0.5)
    assert point.interval == "deff_wilson" and e.interval_used == "deff_wilson"
    covid = test["label"] == 1
    expected = proportion_with_interval(
        (test["prob_covid"] >= 0.5)[covid].to_numpy(), test["patient_id"][covid].to_numpy()
    )
    assert point.sensitivity_ci == pytest.approx((expected.low, expected.high))
    per_image = evaluate(test, None, MetricSettings(interval="wilson"), threshold=0.5)
    width = point.sensitivity_ci[1] - point.sensitivity_ci[0]
    narrower = per_image.point_at(0.5).sensitivity_ci
    assert narrower[1] - narrower[0] <= width  # the per-image interval is still there by name
    assert set(e.subgroups) == {"source"}  # finding is all empty
    groups = {g.value: g for g in e.subgroups["source"]}
    assert groups["c"].auroc is None and "both classes" in groups["c"].undefined["auroc"]
    rows = test[test["source"] == "a"]
    assert groups["a"].auroc == pytest.approx(roc_auc_score(rows["label"], rows["prob_covid"]))
    assert groups["a"].point.threshold == 0.5


def test_prevalence_setting_moves_ppv_and_npv_only() -> None:
    test = frame(100, 5)
    own, low = evaluate(test, None), evaluate(test, None, MetricSettings(prevalence=0.02))
    a, b = own.point_at(0.5), low.point_at(0.5)
    assert (a.sensitivity, a.specificity) == (b.sensitivity, b.specificity)
    assert b.prevalence == 0.02 and b.ppv.value < a.ppv.value and b.npv.value > a.npv.value
    assert a.lr_positive == b.lr_positive


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
    e = evaluate(test, test)
    strict_json(e)
    for key in ("auroc", "average_precision"):
        assert (getattr(e, key) is None) == (key in e.undefined)  # every missing number says why
        assert (None in getattr(e, f"{key}_ci")) == (f"{key}_ci" in e.undefined)
    for name in ("brier", "intercept", "slope"):
        assert (getattr(e.calibration, name) is None) == (name in e.undefined)
    for point in [*e.fixed_points, *e.chosen_points]:
        for key in ("threshold", "sensitivity", "specificity"):
            assert (getattr(point, key) is None) == (key in point.undefined)


def test_no_val_split_leaves_chosen_points_undefined() -> None:
    e = evaluate(frame(30, 0), None, val_reason="the data has no val split")
    assert len(e.chosen_points) == 3 and all(p.threshold is None for p in e.chosen_points)
    assert all(p.undefined["threshold"] == "the data has no val split" for p in e.chosen_points)
    assert e.validation is None and e.calibration.recalibrated == []


def test_model_threshold_is_added_and_settings_are_checked() -> None:
    e = evaluate(frame(30, 0), None, threshold=0.35)
    fixed = [p.threshold for p in e.fixed_points]
    assert 0.35 in fixed and fixed == sorted(fixed)
    with pytest.raises(ValueError, match="metrics.interval"):
        MetricSettings(interval="exact")
    with pytest.raises(ValueError, match="metrics.target_sensitivity"):
        MetricSettings(target_sensitivity=98)
    with pytest.raises(ValueError, match="metrics.thresholds"):
        MetricSettings(thresholds=[0.2, 20])
    with pytest.raises(ValueError, match="metrics.prevalence"):
        MetricSettings(prevalence=1.0)


def test_scalars_are_the_one_flat_view_of_an_evaluation() -> None:
    """Loggers and comparison.csv read these keys; every value comes from the typed fields."""
    e = evaluate(frame(60, 0), frame(30, 1), skipped={"bad.png": "unreadable"})
    flat = e.scalars()
    assert (flat["auroc"], flat["auroc_low"], flat["auroc_high"]) == (e.auroc, *e.auroc_ci)
    assert flat["average_precision_high"] == e.average_precision_ci[1]
    assert (flat["n"], flat["n_positive"], flat["ece"]) == (
        60,
        e.counts.n_positive,
        e.calibration.ece,
    )
    assert flat["skipped_files"] == 1
    youden = next(p for p in e.chosen_points if p.name == "youden")
    assert flat["youden/threshold"] == youden.threshold
    assert flat["youden/sensitivity_low"] == youden.sensitivity_ci[0]
    assert flat["fixed@0.5/tn"] == e.point_at(0.5).counts.tn
    assert flat["fixed@0.2/specificity"] == e.point_at(0.2).specificity
    n_points = len(e.fixed_points) + len(e.chosen_points)
    assert len(flat) == 11 + 11 * n_points  # 11 keys per point, none dropped or doubled
    assert all(v is None or isinstance(v, int | float) for v in flat.values())
    assert Evaluation.from_json(strict_json(e)).scalars() == flat
    assert "youden/threshold" not in e.scalars(points=False)
