"""The confounder audit on a planted view confound: scores that separate the views but not the
classes within a view, features that encode the view beyond the label. Each number is
recomputed from images.csv."""

from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from sklearn.metrics import roc_auc_score

from deepcovid.shortcuts.confounders import (
    audit_confounder,
    confounder_columns,
    probe_confounders,
    stratified_auroc,
)
from deepcovid.shortcuts.flags import with_findings
from deepcovid.shortcuts.report import audit_report
from deepcovid.shortcuts.result import AuditResult, AuditSettings, summarize_audit

COLUMNS = ["view", "sex"]


def view_confounded(seed: int = 0, within: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """AP: 60 COVID, 12 non-COVID; PA: 20 COVID, 48 non-COVID (a bedside COVID ward). P(COVID)
    is high on AP images whatever the class, plus ``within`` × the class; the features hold the
    label and, on their own axis, the view. Sex is unrelated to both."""
    rng = np.random.default_rng(seed)
    view = np.array(["AP"] * 72 + ["PA"] * 68)
    label = np.array([1] * 60 + [0] * 12 + [1] * 20 + [0] * 48)
    n = len(label)
    logit = 2.5 * (view == "AP") + within * label + rng.normal(0, 1, n)
    features = rng.normal(size=(n, 6))
    features[:, 0] += 3.0 * label
    features[:, 1] += 3.0 * (view == "AP")
    images = pd.DataFrame(
        {"path": [f"x{i}.png" for i in range(n)], "label": label,
         "prob_covid": 1 / (1 + np.exp(-logit)), "patient_id": [f"p{i // 2}" for i in range(n)],
         "source": None, "view": view, "sex": rng.choice(["F", "M"], n),
         "prob_covid_lungs_removed": np.nan, "prob_covid_lungs_only": np.nan,
         "lung_area_share": np.nan, "mask_source": None, "mask_problem": "none given",
         "mask_quality": None}
    )  # fmt: skip
    return images, features


def audited(images: pd.DataFrame, features: np.ndarray, csv: Path) -> AuditResult:
    """The audit's summary of ``images``, whose table (with the probes' calls) goes to ``csv``
    as run_audit writes images.csv."""
    settings = AuditSettings(bootstrap_resamples=200, confounders=COLUMNS)
    images, probes = probe_confounders(images, features, COLUMNS, settings.seed)
    images.to_csv(csv, index=False)
    return with_findings(
        summarize_audit(images, probes, {}, {}, 0.5, settings, "test", "resnet18", None)
    )


def pairs_auroc(rows: pd.DataFrame, column: str) -> float:
    """The balanced AUROC by brute force: every COVID–non-COVID pair within one value."""
    wins = []
    for _, group in rows.groupby(column):
        pos = group.loc[group["label"] == 1, "prob_covid"]
        neg = group.loc[group["label"] == 0, "prob_covid"]
        wins += [1.0 if p > q else 0.5 if p == q else 0.0 for p, q in product(pos, neg)]
    return float(np.mean(wins))


def test_a_view_confound_is_flagged_and_every_number_recomputes(tmp_path: Path) -> None:
    """Before: the audit had a source section only; this view confound went unsaid."""
    result = audited(*view_confounded(), tmp_path / "images.csv")
    images = pd.read_csv(tmp_path / "images.csv")
    view = result.confounders["view"]
    label = images["label"].to_numpy()
    assert view.n == 140 and view.auroc == pytest.approx(roc_auc_score(label, images["prob_covid"]))
    counts = pd.crosstab(images["view"], images["label"])
    chi2 = chi2_contingency(counts.to_numpy(), correction=False)[0]
    assert view.cramers_v == pytest.approx(np.sqrt(chi2 / 140))  # 2 × 2: min(r, c) − 1 = 1
    for s in view.strata:
        rows = images[images["view"] == s.value]
        assert (s.n, s.n_positive) == (len(rows), rows["label"].sum())
        assert s.auroc == pytest.approx(roc_auc_score(rows["label"], rows["prob_covid"]))
        assert s.auroc_ci[1] < view.auroc  # its interval lies below the overall AUROC
    assert view.balanced_auroc == pytest.approx(pairs_auroc(images, "view"))
    assert view.balanced_auroc_ci[1] < view.auroc
    probe, calls = view.probe, images.dropna(subset=["view_probe"])
    assert probe.n == len(calls) == 140
    assert probe.accuracy == pytest.approx((calls["view_probe"] == calls["view"]).mean())
    assert probe.label_only_accuracy == pytest.approx(
        (calls["view_probe_label_only"] == calls["view"]).mean()
    )
    assert probe.majority_rate == pytest.approx(72 / 140)
    for name, value in (("COVID", 1), ("non-COVID", 0)):
        of_class = calls[calls["label"] == value]
        agree = of_class["view_probe_within_class"] == of_class["view"]
        assert probe.within_class[name].accuracy == pytest.approx(agree.mean())
    flags = "\n".join(result.flags)
    ap, pa = (s.auroc for s in view.strata)
    assert (
        f"within AP images alone the AUROC is {ap:.3f} and within PA {pa:.3f}, against "
        f"{view.auroc:.3f} over all images with a view" in flags
    )
    assert "its discrimination comes largely from the view mix" in flags
    assert "tell the 2 view values apart beyond what the label says" in flags
    assert "Within view 'PA', which holds both classes" in flags
    assert "sex" not in flags  # unrelated to label and score
    report = audit_report(result)
    assert "### view" in report and "### sex" in report and "Cramér's V of view and label" in report
    print(f"view: overall {view.auroc:.3f}, within AP {ap:.3f}, PA {pa:.3f}, balanced "
          f"{view.balanced_auroc:.3f} {view.balanced_auroc_ci}, V {view.cramers_v:.3f}, probe "
          f"{probe.accuracy:.3f} vs label only {probe.label_only_accuracy:.3f}")  # fmt: skip


def test_a_model_that_separates_within_each_view_is_not_flagged(tmp_path: Path) -> None:
    images, features = view_confounded(within=6.0)
    features[:, 1] = np.random.default_rng(3).normal(size=len(images))  # no view in them
    result = audited(images, features, tmp_path / "images.csv")
    view = result.confounders["view"]
    assert view.balanced_auroc_ci[1] >= view.auroc
    assert not any("view" in flag for flag in result.flags), result.flags


def test_the_balanced_auroc_is_the_auroc_over_within_value_pairs() -> None:
    """Not the mean of the within-value AUROCs: a value with more pairs weighs more."""
    rng = np.random.default_rng(5)
    rows = pd.DataFrame({"view": ["AP"] * 30 + ["PA"] * 8, "label": rng.integers(0, 2, 38),
                         "prob_covid": rng.random(38)})  # fmt: skip
    rows.loc[[0, 30], "label"], rows.loc[[1, 31], "label"] = 1, 0  # both classes in each
    coded = 2 * (rows["view"] == "PA").to_numpy() + rows["label"].to_numpy()
    value = stratified_auroc(coded, rows["prob_covid"].to_numpy())
    assert value == pytest.approx(pairs_auroc(rows, "view"))
    mean = np.mean([roc_auc_score(g["label"], g["prob_covid"]) for _, g in rows.groupby("view")])
    assert value != pytest.approx(mean)


def test_which_columns_are_audited() -> None:
    table = pd.DataFrame({"label": [0, 1], "source": [None, None], "view": ["PA", "AP"],
                          "sex": ["", " "], "finding": ["a", "b"]})  # fmt: skip
    columns, skipped = confounder_columns(table, None)
    assert columns == ["view"]
    assert skipped["confounder source"] == "no image has a source"
    assert skipped["confounder sex"] == "no image has a sex"  # blank cells hold no value
    assert skipped["confounder manufacturer"] == "no image has a manufacturer"
    assert confounder_columns(table, ["finding"]) == (["finding"], {})
    with pytest.raises(ValueError, match=r"names \['scanner'\].*audit.confounders"):
        confounder_columns(table, ["view", "scanner"])


def test_a_value_holding_one_class_is_said() -> None:
    images, _ = view_confounded()
    images.loc[images["view"] == "AP", "label"] = 1
    found = audit_confounder(images, "view", "not probed", 100, 0.95, 0)
    assert found.single_class == {"AP": "COVID"} and found.undefined["probe"] == "not probed"
    assert found.single_class_share == pytest.approx(72 / 140)
