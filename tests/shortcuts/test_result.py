"""shortcuts/result.py: the audit's one flat view (what the loggers get)."""

from dataclasses import replace

from deepcovid.shortcuts.ablation import AblationResult
from deepcovid.shortcuts.attribution import LungAttribution
from deepcovid.shortcuts.confounders import Confounder
from deepcovid.shortcuts.result import AuditResult, MaskSummary, MethodAttribution


def audit_result() -> AuditResult:
    attribution = LungAttribution(20, 0, mean_share=0.4, area_share=0.3, share_over_area=4 / 3,
                                  pointing_hit_rate=0.55)  # fmt: skip
    return AuditResult(
        split="test", backbone="resnet18", checkpoint=None, methods={"gradcam": "Grad-CAM"},
        masks=MaskSummary(20, 20, {"given": 20}),
        lung_attribution={"gradcam": MethodAttribution(attribution)},
        ablation={"intact": AblationResult(20, 0.9, (0.8, 0.97)),
                  "lungs_removed": AblationResult(20, None, (None, None))},
        confounders={"source": Confounder("source", 20, [], 0.7, 0.9, 0.6)},
        flags=["one finding", "another"],
    )  # fmt: skip


def test_scalars_name_each_headline_number_once() -> None:
    result = audit_result()
    assert result.scalars() == {
        "intact/auroc": 0.9,
        "lungs_removed/auroc": None,
        "gradcam/lung_share": 0.4,
        "gradcam/share_over_area": 4 / 3,
        "gradcam/pointing_hit_rate": 0.55,
        "source/cramers_v": 0.7,
        "source/balanced_auroc": 0.6,
        "source/probe_accuracy": None,
        "flags": 2,
    }
    assert replace(result, ablation=None).scalars().keys().isdisjoint({"intact/auroc"})
    assert AuditResult.from_json(result.to_json()).scalars() == result.scalars()
