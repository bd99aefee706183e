"""Scores from a logit pair: P(COVID) in float32 whatever the network's precision, and the
log-odds that do not saturate."""

import torch

from deepcovid import POSITIVE_LABEL
from deepcovid.metrics.scores import log_odds_covid, prob_covid


def test_prob_covid_is_the_softmax_of_the_covid_column_in_float32() -> None:
    logits = torch.tensor([[0.0, 0.01], [2.0, -1.0]], dtype=torch.bfloat16)
    prob = prob_covid(logits)
    expected = logits.float().softmax(dim=1)[:, POSITIVE_LABEL]
    assert prob.dtype == torch.float32 and torch.equal(prob, expected)
    assert abs(prob[0].item() - 0.5025) < 1e-4  # a bf16 softmax gives 0.50390625 (1/256 steps)
    assert logits.softmax(dim=1)[0, POSITIVE_LABEL].item() == 0.50390625


def test_log_odds_are_the_covid_logit_minus_the_other_and_do_not_saturate() -> None:
    logits = torch.zeros(2, 2)
    logits[:, POSITIVE_LABEL] = torch.tensor([30.0, 40.0])
    assert torch.equal(prob_covid(logits), torch.ones(2))  # saturated
    assert torch.equal(log_odds_covid(logits), torch.tensor([30.0, 40.0]))
    odds = log_odds_covid(torch.tensor([[0.3, -1.2]]))
    prob = prob_covid(torch.tensor([[0.3, -1.2]]))
    assert torch.allclose(odds, torch.log(prob / (1 - prob)), atol=1e-6)
