"""Heatmap methods behind one call: (N, H, W) maps of the classifier's score; Grad-CAM refuses
a mean over networks, which has no one last conv block."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from deepcovid.explain import occlusion
from deepcovid.explain.explainers import GradCamExplainer, OcclusionExplainer
from deepcovid.explain.scoring import ProbCovid
from deepcovid.models.ensemble import MeanProbabilityNet
from tests.conftest import tiny_classifier


def test_each_method_gives_one_map_per_image() -> None:
    model, images = tiny_classifier(), torch.randn(2, 3, 12, 12)
    maps = OcclusionExplainer(window=4, stride=4, method="plain")(model, images)
    assert maps.shape == (2, 12, 12)
    assert torch.equal(maps, occlusion(ProbCovid(model.net), images, 4, 4, method="plain")[:, 0])
    assert GradCamExplainer()(model, images).shape == (2, 12, 12)
    assert (OcclusionExplainer.title, GradCamExplainer.title) == ("occlusion", "Grad-CAM")
    assert OcclusionExplainer().colorbar_label == "drop in P(COVID) when occluded"


def test_grad_cam_refuses_a_mean_over_networks_naming_occlusion() -> None:
    model = tiny_classifier()
    mean = SimpleNamespace(
        net=MeanProbabilityNet([model.net], [nn.Identity()]), target_layer="conv"
    )
    with pytest.raises(ValueError, match="use explainer=occlusion"):
        GradCamExplainer()(mean, torch.randn(1, 3, 12, 12))
    assert OcclusionExplainer(window=4, stride=4)(mean, torch.randn(1, 3, 12, 12)).shape == (
        1,
        12,
        12,
    )
