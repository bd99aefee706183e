"""The score explained by occlusion: P(COVID) of a network's 2-class logits."""

from __future__ import annotations

import torch
from torch import nn


class ProbCovid(nn.Module):
    """Wraps a network returning ``(N, 2)`` logits so that it returns P(COVID), shape ``(N,)``.

    Kept as a module (not a lambda) so that ``torch.fx`` can trace through it.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.training = net.training  # mirror the network's mode without changing it

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).softmax(dim=1)[:, 1]
