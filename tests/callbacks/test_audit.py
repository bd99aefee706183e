"""The audit callback and python -m deepcovid.audit read one `audit` config group, at the same
path, into one typed AuditPlan."""

import pytest
from hydra.utils import instantiate

from deepcovid.callbacks.audit import ShortcutAudit
from deepcovid.explain.explainers import GradCamExplainer, OcclusionExplainer
from deepcovid.shortcuts.masks import MaskSources
from deepcovid.shortcuts.run import AuditPlan
from deepcovid.utils.config import compose_config

SAME = [
    "audit.masks.v7=false", "audit.explainers.gradcam=null", "audit.bootstrap_resamples=7",
    "+explainer@audit.explainers.extra=gradcam",  # a method added for one run: its config alone
]  # fmt: skip


@pytest.mark.parametrize("command", ["train", "audit"])
def test_the_same_overrides_reach_both_audits(command: str, tmp_path) -> None:
    enable = ["callbacks.audit.enabled=true"] if command == "train" else []
    cfg = compose_config(command, [*SAME, *enable], str(tmp_path))
    plan = instantiate(cfg.audit)
    if command == "train":
        callback = instantiate(cfg.callbacks.audit)
        assert isinstance(callback, ShortcutAudit)
        plan = callback.plan
    assert isinstance(plan, AuditPlan)
    assert plan.masks == MaskSources(v7=False, segmenter=True)
    assert list(plan.explainers) == ["occlusion", "extra"]
    assert isinstance(plan.explainers["extra"], GradCamExplainer)
    assert isinstance(plan.explainers["occlusion"], OcclusionExplainer)
    assert plan.explainers["occlusion"].score == "logit"
    assert plan.settings.bootstrap_resamples == 7 and plan.settings.seed == cfg.seed


def test_the_callback_is_off_unless_enabled(tmp_path) -> None:
    cfg = compose_config("train", [], str(tmp_path))
    assert instantiate(cfg.callbacks.audit) is None


def test_an_explainer_carries_its_own_title() -> None:
    assert OcclusionExplainer().title == "occlusion" and GradCamExplainer().title == "Grad-CAM"
