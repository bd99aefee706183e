"""Within-source collapse said in words, in report.md and the audit: issue 20's hospital-
confounded set (114 test images: two single-class hospitals and one holding both classes)."""

import numpy as np
import pandas as pd

from deepcovid.metrics.summary import MetricSettings, ModelInfo, summarize
from deepcovid.results.markdown import results_section
from deepcovid.shortcuts.confounders import probe_confounders
from deepcovid.shortcuts.flags import with_findings
from deepcovid.shortcuts.report import audit_report
from deepcovid.shortcuts.result import AuditSettings, summarize_audit


def hospitals(within: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Hospital A: 40 COVID, B: 30 non-COVID, told apart by the model; C: 22 + 22, separated
    by ``within`` (0: not at all)."""
    rng = np.random.default_rng(seed)
    label = np.array([1] * 40 + [0] * 30 + [1] * 22 + [0] * 22)
    source = ["hospital A"] * 40 + ["hospital B"] * 30 + ["hospital C"] * 44
    prob = np.concatenate(
        [rng.uniform(0.5, 1.0, 40), rng.uniform(0.0, 0.5, 30),
         np.clip(rng.uniform(0.2, 0.8, 44) + within * (label[70:] - 0.5), 0, 1)]
    )  # fmt: skip
    n = len(label)
    return pd.DataFrame(
        {"path": [f"x{i}.png" for i in range(n)], "label": label, "prob_covid": prob,
         "patient_id": [f"p{i}" for i in range(n)], "source": source, "finding": None}
    )  # fmt: skip


def evaluation_report(frame: pd.DataFrame) -> tuple[str, float]:
    settings = MetricSettings(bootstrap_resamples=200)
    evaluation = summarize(frame, None, settings, 0.5, ModelInfo("resnet18"))
    return results_section(evaluation), evaluation


def audited(frame: pd.DataFrame):
    images = frame.assign(
        prob_covid_lungs_removed=np.nan, prob_covid_lungs_only=np.nan, lung_area_share=np.nan,
        mask_source=None, mask_problem="none given", mask_quality=None,
    )  # fmt: skip
    features = np.zeros((len(frame), 4))  # features that hold nothing
    settings = AuditSettings(bootstrap_resamples=200)
    images, probes = probe_confounders(images, features, ["source"], 0)
    return with_findings(
        summarize_audit(images, probes, {}, {}, 0.5, settings, "test", "resnet18", None)
    )


def test_both_reports_say_that_the_auroc_collapses_within_the_mixed_hospital() -> None:
    """Before: report.md's AUROC 0.8xx and, in the subgroup table only, about 0.5 within
    hospital C; neither "Read these numbers with care" nor the audit's findings said it."""
    frame = hospitals()
    report, evaluation = evaluation_report(frame)
    care = report.split("## Read these numbers with care")[1].split("## Discrimination")[0]
    (c,) = [g for g in evaluation.subgroups["source"] if g.value == "hospital C"]
    assert c.auroc_ci[1] < evaluation.auroc
    said = (
        f"Within source 'hospital C', which holds both classes (22 COVID, 22 non-COVID), the "
        f"AUROC is {c.auroc:.3f} (95 % CI {c.auroc_ci[0]:.3f}–{c.auroc_ci[1]:.3f}), below the "
        f"{evaluation.auroc:.3f} of all images: the overall AUROC comes largely from telling "
        "the source values apart"
    )
    assert said in care
    audit = audited(frame)
    assert audit.confounders["source"].auroc == evaluation.auroc
    (finding,) = [f for f in audit.flags if f.startswith("Within source 'hospital C'")]
    assert (
        f"the AUROC is {c.auroc:.3f}" in finding and f"below the {evaluation.auroc:.3f}" in finding
    )
    assert f"- {finding}." in audit_report(audit)
    print(f"overall {evaluation.auroc:.3f}, within hospital C {c.auroc:.3f} {c.auroc_ci}")


def test_most_images_from_single_class_sources_is_said() -> None:
    report, _ = evaluation_report(hospitals(within=1.0))
    care = report.split("## Read these numbers with care")[1].split("## Discrimination")[0]
    assert "70 of 114 images come from sources holding one class only ('hospital A' (40, " in care
    assert "only within 'hospital C' can COVID be told from non-COVID at one source" in care
    assert "Within source" not in care  # hospital C is separated as well as the whole


def test_nothing_is_said_when_sources_hold_both_classes_and_the_model_separates_within() -> None:
    frame = hospitals(within=1.0)
    frame["source"] = np.where(np.arange(len(frame)) % 2, "site 1", "site 2")
    report, _ = evaluation_report(frame)
    assert "Read these numbers with care" not in report
    assert not any("source" in f for f in audited(frame).flags)
