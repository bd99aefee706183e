"""Lung ablation: the ablated inputs, and AUROC and operating points of each variant."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deepcovid.shortcuts.ablation import ablate, summarize_ablation
from deepcovid.shortcuts.flags import scope_findings, with_findings
from deepcovid.shortcuts.report import audit_report
from deepcovid.shortcuts.result import AuditSettings, out_of_scope, summarize_audit


def test_ablated_inputs_keep_and_remove_exactly_the_lungs() -> None:
    images = torch.randn(2, 3, 6, 6)
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[:, 1:4, 2:5] = True
    ablated = ablate(images, masks, baseline=0.5)
    lungs = masks[:, None].expand_as(images)
    assert torch.equal(ablated["lungs_removed"][lungs], torch.full((2 * 3 * 9,), 0.5))
    assert torch.equal(ablated["lungs_removed"][~lungs], images[~lungs])
    assert torch.equal(ablated["lungs_only"][lungs], images[lungs])
    assert (ablated["lungs_only"][~lungs] == 0.5).all()


def test_each_variant_is_scored_on_its_own_column() -> None:
    rng = np.random.default_rng(0)
    n = 80
    label = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "label": label,
            "prob_covid": np.clip(0.5 * label + 0.5 * rng.random(n), 0, 1),
            "prob_covid_lungs_removed": rng.random(n),
            "prob_covid_lungs_only": np.clip(0.3 * label + 0.7 * rng.random(n), 0, 1),
            "patient_id": [f"p{i // 2}" for i in range(n)],
        }
    )
    results = summarize_ablation(frame, {"fixed": 0.5}, 200, 0.95, 0)
    for variant, column in (("intact", "prob_covid"), ("lungs_removed", "prob_covid_lungs_removed"),
                            ("lungs_only", "prob_covid_lungs_only")):  # fmt: skip
        result = results[variant]
        assert result.auroc == pytest.approx(roc_auc_score(label, frame[column]))
        assert result.auroc_ci[0] <= result.auroc <= result.auroc_ci[1] and result.n == n
        (point,) = result.points
        called = frame[column] >= 0.5
        assert point.sensitivity == pytest.approx(called[label == 1].mean())
        assert point.specificity == pytest.approx((~called[label == 0]).mean())
    one_class = summarize_ablation(frame[frame["label"] == 1], {}, 50, 0.95, 0)
    assert (
        one_class["intact"].auroc is None
        and "both classes" in one_class["intact"].undefined["auroc"]
    )


def audited(intact: np.ndarray, removed: np.ndarray, label: np.ndarray, resamples: int = 300):
    """The audit of an ``images.csv`` with these scores (every image masked, one per patient)."""
    n = len(label)
    images = pd.DataFrame(
        {
            "path": [f"x{i}.png" for i in range(n)],
            "label": label,
            "prob_covid": intact,
            "prob_covid_lungs_removed": removed,
            "prob_covid_lungs_only": intact,
            "patient_id": [f"p{i}" for i in range(n)],
            "source": None,
            "lung_area_share": 0.3,
            "mask_source": "given",
            "mask_problem": None,
            "mask_quality": None,
        }
    )
    settings = AuditSettings(bootstrap_resamples=resamples)
    return with_findings(summarize_audit(images, {}, {}, {}, 0.5, settings, "test", "r18", None))


def test_the_retained_share_has_a_paired_interval_and_the_flag_is_decided_on_it() -> None:
    """20 + 20 images, intact AUROC 0.865, lungs removed 0.703: 55 % retained, but its interval
    reaches far below 50 %. The flag used to be raised on the 55 % alone ("keeps 0.81 of its
    AUROC ... 55 % of its discrimination"); now it is not, and report.md says why."""
    rng = np.random.default_rng(4)
    label = np.repeat([1, 0], 20)
    intact = 1 / (1 + np.exp(-(1.5 * label + rng.normal(0, 1, 40))))
    removed = 1 / (1 + np.exp(-(0.8 * label + rng.normal(0, 1, 40))))
    result = audited(intact, removed, label)
    retained = result.retained
    assert retained.share == pytest.approx((roc_auc_score(label, removed) - 0.5)
                                           / (roc_auc_score(label, intact) - 0.5))  # fmt: skip
    assert retained.share >= 0.5 and retained.share_ci[0] < 0.5 < retained.share_ci[1]
    low, high = retained.difference_ci
    assert low < retained.difference < high and retained.unit == "patient"
    assert not any("lungs removed" in flag for flag in result.flags)
    report = audit_report(result)
    assert f"retains {round(100 * retained.share)} % (95 % CI" in report
    assert "the flag is not raised, decided on the interval" in report
    print(f"retained {retained.share:.3f} ({retained.share_ci[0]:.3f}–{retained.share_ci[1]:.3f})")


def test_a_model_that_ignores_the_lungs_is_flagged_on_the_interval() -> None:
    rng = np.random.default_rng(0)
    label = np.repeat([1, 0], 30)
    intact = 1 / (1 + np.exp(-(3 * label + rng.normal(0, 1, 60))))
    result = audited(intact, intact, label)  # the lungs removed change nothing
    assert result.retained.share == pytest.approx(1.0) and result.retained.share_ci == (1.0, 1.0)
    assert result.retained.difference_ci == (0.0, 0.0)
    (flag,) = [f for f in result.flags if "lungs removed" in f]
    assert "retains 100 % (95 % CI 100 %–100 %) of its discrimination above chance" in flag


def test_out_of_scope_images_kept_in_the_audit_are_named() -> None:
    rng = np.random.default_rng(7)
    label = np.repeat([1, 0], 10)
    intact = 1 / (1 + np.exp(-(2.0 * label + rng.normal(0, 1, 20))))
    clean = audited(intact, intact, label, 50)
    assert clean.out_of_scope == {} and not any("frontal" in f for f in clean.flags)
    images = pd.DataFrame({"path": ["x0.png", "x1.png"], "scope_reason": ["", "CT (p=0.99)"]})
    assert out_of_scope(images) == {"x1.png": "CT (p=0.99)"}
    result = type(clean)(**{**vars(clean), "out_of_scope": {"/d/x1.png": "CT (p=0.99)"}})
    (found,) = scope_findings(result)
    assert found.startswith("1 audited image(s) are not frontal chest radiographs (x1.png: CT")
