"""The scores read off a 2-class logit pair (non-COVID, COVID), in float32 whatever the
network's precision: a bf16 softmax would quantise P(COVID) to steps of 1/512 near 0.5."""

from __future__ import annotations

import torch

from deepcovid import POSITIVE_LABEL


def prob_covid(logits: torch.Tensor) -> torch.Tensor:
    """P(COVID) of shape (N,) from logits (N, 2)."""
    return logits.float().softmax(dim=1)[:, POSITIVE_LABEL]


def log_odds_covid(logits: torch.Tensor) -> torch.Tensor:
    """log(P(COVID) / P(non-COVID)) of shape (N,): the COVID logit minus the other. Unlike
    P(COVID) it does not saturate at 1.0 for confident images."""
    logits = logits.float()
    return logits[:, POSITIVE_LABEL] - logits[:, 1 - POSITIVE_LABEL]
