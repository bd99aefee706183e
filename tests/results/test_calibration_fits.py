"""Calibration fits on the stored log-odds (issue 20 item 4): a saturated float32 softmax
no longer makes the slope depend on a clip constant."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import torch

from deepcovid.metrics import calibration
from deepcovid.metrics.scores import log_odds_covid, prob_covid
from deepcovid.metrics.summary import MetricSettings, ModelInfo, summarize
from deepcovid.results.markdown import results_section


def saturating_scores(n: int = 300, seed: int = 0):
    """Labels, float32-softmax P(COVID) and the log-odds behind them: about one in nine
    scores sits beyond a logit gap of 17, where P(COVID) is exactly 1.0 (or below 1e-6)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 9.0, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-0.5 * z))).astype(int)
    logits = torch.tensor(np.column_stack([np.zeros(n), z]), dtype=torch.float32)
    prob = prob_covid(logits).numpy().astype(np.float64)
    return label, prob, log_odds_covid(logits).numpy().astype(np.float64)


@pytest.mark.parametrize("epsilon", [1e-9, 1e-6, 1e-4])
def test_calibration_fits_use_the_stored_log_odds_whatever_the_clip(
    epsilon: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the slope was fitted on logit(clip(p)) and moved with the clip (0.4655 / 0.4671
    / 0.4973 for 1e-9 / 1e-6 / 1e-4 here, 31 of 300 scores clipped); now the stored log-odds
    give the GLM's slope on them (0.4656) whatever the clip."""
    label, prob, z = saturating_scores()
    assert 25 <= calibration.saturated_count(prob) <= 60
    monkeypatch.setattr(calibration, "PROB_EPSILON", epsilon)
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(len(label))], "label": label,
                          "prob_covid": prob, "logit_covid": z})  # fmt: skip
    evaluation = summarize(frame, frame, MetricSettings(bootstrap_resamples=20), 0.5,
                           ModelInfo("resnet18"))  # fmt: skip
    expected = sm.GLM(label, np.column_stack([z, np.ones_like(z)]),
                      family=sm.families.Binomial()).fit()  # fmt: skip
    assert evaluation.calibration.fitted_on == "log-odds"
    assert evaluation.calibration.slope.value == pytest.approx(expected.params[0], rel=1e-6)
    platt = evaluation.calibration.recalibrated[0]
    assert platt.parameters["slope"] == pytest.approx(expected.params[0], rel=1e-6)
    assert platt.slope.value == pytest.approx(1.0, abs=1e-6)  # refitted on its own val


def test_without_log_odds_the_report_counts_the_saturated_scores() -> None:
    label, prob, _ = saturating_scores()
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(len(label))], "label": label,
                          "prob_covid": prob})  # fmt: skip
    evaluation = summarize(frame, None, MetricSettings(bootstrap_resamples=20), 0.5,
                           ModelInfo("resnet18"))  # fmt: skip
    saturated = calibration.saturated_count(prob)
    assert (evaluation.calibration.fitted_on, evaluation.calibration.saturated) == (
        "clipped logit",
        saturated,
    )
    text = results_section(evaluation)
    assert f"{saturated} of {len(label)} scores are saturated" in text
