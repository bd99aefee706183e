"""audit/report.md from a hand-built typed result: the findings, each section's numbers, and
what was not measured said so."""

import dataclasses

from deepcovid.shortcuts.flags import with_findings
from deepcovid.shortcuts.report import audit_report
from tests.shortcuts.audit_results import ablation, confounder, result, retained


def test_a_clean_audit_says_no_finding_is_not_proof() -> None:
    report = audit_report(with_findings(result()))
    assert report.startswith("# Does the model look at the lungs? resnet18 on the test split\n")
    assert "40 images; 40 have a lung mask (40 given); 0 have none" in report
    assert "- No finding crossed its threshold. That is not proof" in report
    assert "### Grad-CAM (P(COVID))" in report  # the explainer's title, then what it explains
    assert "| all | 20 | 80 % | 30 % | 2.67 | 90 % | 0 |" in report
    assert "| intact | 0.900 (0.800–0.970) |" in report
    assert "the flag is not raised, decided on the interval" in report
    assert "| A | 20 | 10 | 10 | 0.880 (0.800–0.950) |" in report
    assert "Cramér's V of source and label: 0.100" in report
    assert "names the source of 58 % of 40 images" in report
    assert "- Within the 20 COVID images (2 values): the probe is right for 62 %" in report
    assert "## Not measured" not in report and "## Heatmap sanity checks" not in report
    assert report.endswith("![Heatmaps with the lung contour](figures/overlays.png)\n")


def test_findings_are_listed_and_confounding_is_stated() -> None:
    audited = with_findings(result(
        ablation=ablation(0.90, 0.80, 0.88), retained=retained(0.90, 0.80, (0.6, 1.0)),
        confounders={"source": confounder(single_class={"C": "COVID"}, single_class_share=0.2)},
    ))  # fmt: skip
    report = audit_report(audited)
    assert len(audited.flags) == 2 and all(f"- {flag}." in report for flag in audited.flags)
    assert "the flag is raised, decided on the interval" in report
    assert "**Label and source are confounded**: 20 % of the images" in report


def test_what_was_not_measured_is_said_with_its_reason() -> None:
    why = "no image has a lung mask (none given, none in V7, segmenter off)"
    skipped = dataclasses.replace(
        result(ablation=None, retained=None, lung_attribution={}, confounders={}),
        skipped={"lung_attribution": why, "ablation": why},
    )
    report = audit_report(skipped)
    assert f"No lung ablation: {why}." in report
    assert f"Heatmaps were not scored: {why}." in report
    assert "No grouping of the images to audit (audit.confounders)." in report
    assert f"## Not measured\n\n- lung_attribution: {why}\n- ablation: {why}\n" in report
