"""Typed audit results built by hand for the findings' and the report's tests: a model that
reads the lungs, each part replaceable so that one number crosses its threshold."""

import dataclasses

import numpy as np

from deepcovid.metrics.operating_points import NO_INTERVAL
from deepcovid.shortcuts.ablation import AblationResult, Retained, retained_share
from deepcovid.shortcuts.attribution import LungAttribution
from deepcovid.shortcuts.confounders import Confounder, StratumAuroc
from deepcovid.shortcuts.probe import ClassProbe, GroupProbe
from deepcovid.shortcuts.result import AuditResult, MaskSummary, MethodAttribution


def ablation(intact: float, removed: float, only: float, low: float = 0.8) -> dict:
    return {
        "intact": AblationResult(40, intact, (low, 0.97)),
        "lungs_removed": AblationResult(40, removed, (removed - 0.1, removed + 0.05)),
        "lungs_only": AblationResult(40, only, (only - 0.1, only + 0.05)),
    }


def retained(intact: float, removed: float, ci: tuple[float, float]) -> Retained:
    share = float(retained_share(np.float64(intact), np.float64(removed)))
    return Retained(intact - removed, NO_INTERVAL, share, ci, 200, 200, "patient")


def probe(accuracy: float, within: float) -> GroupProbe:
    """A probe of 3 sources over 40 images: 50 % naming the commonest, 55 % the label alone."""
    return GroupProbe(
        "source", accuracy, 0.5, None, 3, 5, 40, 0.55,
        within_class={"COVID": ClassProbe(within, 0.6, 2, 20)},
    )  # fmt: skip


def confounder(**changes) -> Confounder:
    """Sources A and B, both classes in each, AUROC 0.88 and 0.90 within, 0.90 over all."""
    strata = [
        StratumAuroc("A", 20, 10, 0.88, auroc_ci=(0.80, 0.95)),
        StratumAuroc("B", 20, 10, 0.90, auroc_ci=(0.82, 0.97)),
    ]
    base = Confounder("source", 40, strata, 0.1, 0.90, 0.89, (0.82, 0.95), probe=probe(0.58, 0.62))
    return dataclasses.replace(base, **changes)


def attribution(**changes) -> dict[str, MethodAttribution]:
    """Grad-CAM maps with 80 % of their attribution in lungs covering 30 % of the image."""
    base = LungAttribution(
        20, 0, mean_share=0.8, area_share=0.3, share_over_area=0.8 / 0.3, pointing_hit_rate=0.9
    )
    return {"gradcam": MethodAttribution(dataclasses.replace(base, **changes))}


def result(**changes) -> AuditResult:
    """An audit of a model that reads the lungs: no finding crosses its threshold."""
    base = AuditResult(
        split="test", backbone="resnet18", checkpoint=None, methods={"gradcam": "P(COVID)"},
        masks=MaskSummary(40, 40, {"given": 40}), lung_attribution=attribution(),
        ablation=ablation(0.90, 0.55, 0.88), confounders={"source": confounder()}, flags=[],
        retained=retained(0.90, 0.55, (0.0, 0.3)), titles={"gradcam": "Grad-CAM"},
    )  # fmt: skip
    return dataclasses.replace(base, **changes)
