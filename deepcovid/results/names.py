"""How results name things for people: threshold rules and interval methods, in words."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deepcovid.metrics.operating_points import OperatingPoint

INTERVAL_NAMES = {
    "auto": "patient-aware where patient ids exist, else per-image Wilson score",
    "deff_wilson": "patient-aware Wilson (on the design-effect-adjusted number of images)",
    "patient_bootstrap": "patient bootstrap",
    "wilson": "per-image Wilson score",
    "clopper_pearson": "per-image Clopper-Pearson exact",
    "normal": "per-image normal-approximation (Wald)",
}
RULE_TEXT = {
    "target_sensitivity": "val sensitivity ≥ {target:g} %",
    "youden": "max. Youden's J on val",
    "target_specificity": "val specificity ≥ {target:g} %",
}


def rule_name(point: OperatingPoint) -> str:
    """How a point's threshold was obtained, in words."""
    if point.name == "fixed":
        return f"fixed {point.threshold:g}"
    return RULE_TEXT[point.name].format(target=100 * (point.target or 0.0))
