"""Explaining predictions: exact and fast occlusion, its drill-down approximation, Grad-CAM,
and overlays of heatmaps on X-rays."""

from deepcovid.explain.drilldown import Drilldown
from deepcovid.explain.gradcam import grad_cam
from deepcovid.explain.occlusion import occlusion

__all__ = ["Drilldown", "grad_cam", "occlusion"]
