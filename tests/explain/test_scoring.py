"""The explained score: P(COVID) saturates on confident images, its log-odds do not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepcovid.explain.explainers import GradCamExplainer, OcclusionExplainer
from deepcovid.explain.scoring import LogOddsCovid, ProbCovid, score_module


class Confident(nn.Module):
    """COVID logit 40 × the mean of the top-left quarter: P(COVID) is 1.0 in float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        evidence = x[:, :, :8, :8].mean((1, 2, 3)) * 40.0
        return torch.stack([torch.zeros_like(evidence), evidence], dim=1)


def test_scores_of_the_logits() -> None:
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    net = nn.Identity()
    assert torch.allclose(ProbCovid(net)(logits), logits.softmax(1)[:, 1])
    assert torch.equal(LogOddsCovid(net)(logits), torch.tensor([2.0, -2.0]))
    with pytest.raises(ValueError, match="score='odds'"):
        score_module(net, "odds")


def test_occlusion_of_the_log_odds_sees_what_a_saturated_probability_hides() -> None:
    classifier = type("Classifier", (), {"net": Confident(), "target_layer": ""})()
    image = torch.ones(1, 1, 16, 16)
    assert float(ProbCovid(classifier.net)(image)) == 1.0  # saturated
    prob = OcclusionExplainer(window=4, stride=4, method="plain")(classifier, image)
    logit = OcclusionExplainer(window=4, stride=4, method="plain", score="logit")(classifier, image)
    assert float(prob.abs().max()) < 1e-6  # no single patch moves P(COVID) = 1.0
    assert float(logit[0, :8, :8].min()) == pytest.approx(10.0)  # 40 × 16/64 per patch
    assert float(logit[0, 8:, 8:].abs().max()) == 0.0  # outside the evidence: nothing
    assert "log-odds" in OcclusionExplainer(score="logit").colorbar_label
    assert "log-odds" in GradCamExplainer().colorbar_label
