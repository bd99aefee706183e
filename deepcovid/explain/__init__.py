"""Explaining predictions: exact and fast occlusion, Grad-CAM, and overlays of heatmaps on
X-rays."""

from deepcovid.explain.gradcam import grad_cam
from deepcovid.explain.occlusion import occlusion

__all__ = ["grad_cam", "occlusion"]
