"""The audit's plan from its config group, the thresholds it reports at, and its numbers sent
to the loggers."""

import dataclasses
from types import SimpleNamespace

from deepcovid.explain.explainers import GradCamExplainer
from deepcovid.shortcuts.flags import with_findings
from deepcovid.shortcuts.run import audit_plan, log_audit, model_thresholds
from tests.shortcuts.audit_results import ablation, result, retained


def test_the_plan_leaves_out_explainers_set_to_null() -> None:
    gradcam = GradCamExplainer()
    plan = audit_plan({"gradcam": gradcam, "occlusion": None}, {"v7": False}, seed=3)
    assert plan.explainers == {"gradcam": gradcam}
    assert (plan.masks.v7, plan.masks.segmenter, plan.settings.seed) == (False, True, 3)


def test_the_thresholds_are_the_models_and_those_chosen_on_val() -> None:
    record = SimpleNamespace(
        threshold=0.3,
        operating_points={"youden": {"threshold": 0.42}, "target_sensitivity": {"threshold": None}},
    )
    assert model_thresholds(record) == {"fixed": 0.3, "youden": 0.42}


class Recorder:
    """A logger that takes numbers only (as the CSV logger)."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.saved = False

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.metrics |= metrics

    def save(self) -> None:
        self.saved = True


def test_a_plain_logger_gets_the_audits_numbers() -> None:
    audited = with_findings(dataclasses.replace(
        result(), ablation=ablation(0.90, 0.80, 0.88), retained=retained(0.90, 0.80, (0.6, 1.0))
    ))  # fmt: skip
    logger = Recorder()
    log_audit([logger], audited, {})
    assert logger.saved and logger.metrics["audit/flags"] == 1.0
    assert logger.metrics["audit/lungs_removed/auroc"] == 0.8
    assert logger.metrics["audit/source/probe_accuracy"] == 0.58
