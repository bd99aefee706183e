"""The score a heatmap explains, as a module over a network's 2-class logits: P(COVID)
(``prob``) or the log-odds of COVID (``logit``).

Occlusion of P(COVID) saturates: on a confident image (P = 1.0 in float32) no single patch
lowers the score and the map is (nearly) all zeros. The log-odds keep moving there.
Kept as modules (not lambdas) so that ``torch.fx`` can trace through them.
"""

from __future__ import annotations

import torch
from torch import nn

from deepcovid.metrics.scores import log_odds_covid, prob_covid
from deepcovid.utils.choices import checked_choice, choices

SCORES = ("prob", "logit")
Score = choices("Score", SCORES)  # an explainer's score
SCORE_LABELS = {"prob": "P(COVID)", "logit": "log-odds of COVID"}


class ProbCovid(nn.Module):
    """Wraps a network returning ``(N, 2)`` logits so that it returns P(COVID), shape ``(N,)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.training = net.training  # mirror the network's mode without changing it

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return prob_covid(self.net(images))


class LogOddsCovid(ProbCovid):
    """Like :class:`ProbCovid`, returning the log-odds of COVID, shape ``(N,)``."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return log_odds_covid(self.net(images))


def score_module(net: nn.Module, score: str = "prob") -> ProbCovid:
    """``net`` wrapped to return the named score."""
    score = checked_choice("score", score, Score)
    return (LogOddsCovid if score == "logit" else ProbCovid)(net)
