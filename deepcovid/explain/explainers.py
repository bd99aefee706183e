"""Heatmap methods behind one call: ``explainer(classifier, images) → (N, H, W)`` maps.

These are what ``conf/explainer/*.yaml`` instantiates, for the heatmap callback of training,
for ``deepcovid.predict`` and for the audit. The classifier is anything with ``net`` (logits
``(N, 2)``) and ``target_layer`` (its last conv block), e.g. a
:class:`~deepcovid.models.classifier.CovidClassifier` in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from omegaconf import MISSING
from torch import nn

from deepcovid.explain.gradcam import grad_cam
from deepcovid.explain.occlusion import OcclusionMethod, occlusion
from deepcovid.explain.scoring import SCORE_LABELS, Score, score_module
from deepcovid.models.ensemble import MeanProbabilityNet
from deepcovid.utils.choices import checked_choice


class Explainable(Protocol):
    net: nn.Module
    target_layer: str


class Explainer(Protocol):
    """Maps a classifier and images ``(N, C, H, W)`` to heatmaps ``(N, H, W)``."""

    name: str
    title: str  # in reports and figure titles
    colorbar_label: str

    def __call__(self, classifier: Explainable, images: torch.Tensor) -> torch.Tensor: ...


class OcclusionExplainer:
    """Occlusion sensitivity of the ``score`` (``prob``: P(COVID), ``logit``: its log-odds):
    exact, through incremental inference when the network traces."""

    name = "occlusion"
    title = "occlusion"

    def __init__(
        self,
        window: int = 16,
        stride: int = 8,
        baseline: float = 0.0,
        batch_size: int = 32,
        method: str = "auto",
        score: str = "prob",
    ) -> None:
        self.window, self.stride, self.baseline = window, stride, baseline
        self.batch_size = batch_size
        self.method = checked_choice("method", method, OcclusionMethod)
        self.score = checked_choice("score", score, Score)
        self.colorbar_label = f"drop in {SCORE_LABELS[self.score]} when occluded"

    def __call__(self, classifier: Explainable, images: torch.Tensor) -> torch.Tensor:
        maps = occlusion(
            score_module(classifier.net, self.score),
            images,
            self.window,
            self.stride,
            self.baseline,
            batch_size=self.batch_size,
            method=self.method,
        )
        return maps[:, 0]


class GradCamExplainer:
    """Grad-CAM of the ``score`` (default: the log-odds of COVID) at the classifier's last
    conv block."""

    name = "gradcam"
    title = "Grad-CAM"

    def __init__(self, score: str = "logit") -> None:
        self.score = checked_choice("score", score, Score)
        self.colorbar_label = f"Grad-CAM ({SCORE_LABELS[self.score]})"

    def __call__(self, classifier: Explainable, images: torch.Tensor) -> torch.Tensor:
        if isinstance(classifier.net, MeanProbabilityNet):
            raise ValueError(
                "explainer=gradcam: Grad-CAM reads one network's last conv block, but this "
                "model's P(COVID) is a mean over checkpoints or test-time views; use "
                "explainer=occlusion, which explains that mean probability"
            )
        return grad_cam(classifier.net, classifier.target_layer, images, self.score)


@dataclass
class OcclusionConfig:
    """``conf/explainer/occlusion.yaml``'s schema (registered in ``deepcovid.conf``): Hydra
    checks each key's type, and ``method`` and ``score`` against their choices, when it composes
    the config (the yaml gives the values)."""

    _target_: str = f"{__name__}.OcclusionExplainer"
    window: int = MISSING
    stride: int = MISSING
    baseline: float = MISSING
    batch_size: int = MISSING
    method: OcclusionMethod = MISSING
    score: Score = MISSING


@dataclass
class GradCamConfig:
    """``conf/explainer/gradcam.yaml``'s schema, as :class:`OcclusionConfig`'s."""

    _target_: str = f"{__name__}.GradCamExplainer"
    score: Score = MISSING
