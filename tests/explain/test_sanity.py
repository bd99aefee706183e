"""Heatmap sanity checks: model-parameter randomisation and deletion curves."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from deepcovid.explain.explainers import GradCamExplainer, OcclusionExplainer
from deepcovid.explain.sanity import (
    FLAG_WORDS,
    SanitySettings,
    cascade,
    deletion_curve,
    sanity_checks,
    sanity_findings,
    similarity,
    weighted_layers,
)
from deepcovid.models.backbones import create_backbone
from tests.conftest import chest_like

FAST = SanitySettings(images=4, layer_shares=(0.5, 1.0), deletion_fractions=(0.0, 0.1, 0.5))


class EdgeExplainer:
    """An explainer that ignores the model: the image's gradient magnitude (an edge map)."""

    name = "edges"
    colorbar_label = "edge strength"

    def __call__(self, classifier, images: torch.Tensor) -> torch.Tensor:
        gray = images.mean(1)
        dy = torch.nn.functional.pad(gray[:, 1:] - gray[:, :-1], (0, 0, 0, 1))
        dx = torch.nn.functional.pad(gray[:, :, 1:] - gray[:, :, :-1], (0, 1))
        return (dx**2 + dy**2).sqrt()


def resnet() -> SimpleNamespace:
    torch.manual_seed(0)
    backbone = create_backbone("resnet18", pretrained=False)
    return SimpleNamespace(
        net=backbone.net.eval(), head_name=backbone.head, target_layer=backbone.target_layer
    )


def images(n: int = 4, size: int = 32) -> torch.Tensor:
    arrays = [chest_like(size, i, i % 2 == 0) for i in range(n)]
    batch = torch.tensor(np.stack(arrays), dtype=torch.float32)[:, None] / 255.0
    return ((batch - 0.5) / 0.25).repeat(1, 3, 1, 1)


def test_cascade_goes_from_the_head_down() -> None:
    model = resnet()
    layers = weighted_layers(model.net, "fc")
    assert layers[0] == "layer4.1.bn2" and layers[-1] == "conv1" and "fc" not in layers
    steps = cascade(model.net, "fc", (0.5, 1.0))
    assert [name for name, _ in steps] == [
        "head", "head + top 50% of layers", "head + top 100% of layers"
    ]  # fmt: skip
    assert steps[-1][1] == ["fc", *layers]


def test_similarity_of_identical_inverted_and_flat_maps() -> None:
    heatmap = np.random.default_rng(0).random((32, 32))
    assert similarity(heatmap, heatmap) == pytest.approx((1.0, 1.0, False))
    rho, ssim, flat = similarity(heatmap, -heatmap)
    assert rho == pytest.approx(-1.0) and ssim < 0 and not flat
    rho, _, flat = similarity(heatmap, np.zeros((32, 32)))
    assert rho == 0.0 and flat


def test_randomisation_fires_for_an_edge_detector_not_for_model_based_maps() -> None:
    model = resnet()
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    explainers = {
        "edges": EdgeExplainer(),
        "occlusion": OcclusionExplainer(window=16, stride=8, score="logit"),
        "gradcam": GradCamExplainer(),
    }
    settings = SanitySettings(images=2, layer_shares=(1.0,), deletion_fractions=(0.0, 0.5))
    checks = sanity_checks(model, images(2), explainers, settings)
    edges = checks["edges"].randomisation
    assert edges.flagged and [s.spearman for s in edges.steps] == pytest.approx([1.0] * 2)
    assert [s.ssim for s in edges.steps] == pytest.approx([1.0] * 2)
    for method in ("occlusion", "gradcam"):
        last = checks[method].randomisation.steps[-1]
        assert not checks[method].randomisation.flagged
        assert last.spearman < FAST.max_spearman, (method, last)
    findings = sanity_findings(checks, FAST)
    flagged = [f for f in findings if FLAG_WORDS in f]
    assert len(flagged) == 1 and flagged[0].startswith("edges:")
    after = model.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model is untouched


class QuadrantNet(nn.Module):
    """Logits (0, 8 · mean of the top-left quadrant): only that quadrant matters."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        half = images.shape[-1] // 2
        evidence = images[:, :, :half, :half].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(evidence), 8 * evidence], dim=1)


def test_deletion_curve_rewards_the_map_that_points_at_the_evidence() -> None:
    batch = torch.ones(3, 3, 16, 16)
    right = np.zeros((3, 16, 16))
    right[:, :8, :8] = 1.0
    fractions = (0.0, 0.125, 0.25)  # up to the whole quadrant (64 of 256 pixels)
    good = deletion_curve(QuadrantNet(), batch, right, fractions, 0.0, seed=0)
    bad = deletion_curve(QuadrantNet(), batch, 1.0 - right, fractions, 0.0, seed=0)
    expit = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert good.attributed == pytest.approx([expit(8), expit(4), expit(0)])
    assert bad.attributed == pytest.approx([expit(8)] * 3)  # it never touches the quadrant
    assert good.random[0] == pytest.approx(expit(8)) and good.random[-1] < expit(8)
    assert good.area_between > 0.1 and bad.area_between < 0
    mean_gap = np.asarray(good.random) - np.asarray(good.attributed)
    trapezoid = np.sum((mean_gap[1:] + mean_gap[:-1]) / 2 * np.diff(fractions)) / 0.25
    assert good.area_between == pytest.approx(trapezoid)
    findings = sanity_findings(
        {"bad": SimpleNamespace(randomisation=SimpleNamespace(flagged=False, steps=[None]),
                                deletion=bad)}, FAST)  # fmt: skip
    assert findings and "no faster than removing random pixels" in findings[0]


def test_settings_refuse_bad_fractions() -> None:
    with pytest.raises(ValueError, match="deletion_fractions"):
        SanitySettings(deletion_fractions=(0.1, 0.5))
    with pytest.raises(ValueError, match="layer_shares"):
        SanitySettings(layer_shares=(0.0,))


def test_runs_under_inference_mode_as_after_lightnings_test() -> None:
    settings = SanitySettings(images=1, layer_shares=(1.0,), deletion_fractions=(0.0, 0.5))
    model = resnet()
    with torch.inference_mode():
        batch = images(1)  # as the audit's images are, after Lightning's test
        checks = sanity_checks(model, batch, {"gradcam": GradCamExplainer()}, settings)
    assert len(checks["gradcam"].randomisation.steps) == 2
