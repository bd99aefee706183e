"""Source tests: the probe finds what the features hold, per source AUROC, confounding."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.shortcuts.probe import (
    PenultimateFeatures,
    confounding,
    source_probe,
    within_source,
)


def table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "path": [f"x{i}.png" for i in range(n)],
            "label": rng.integers(0, 2, n),
            "prob_covid": rng.random(n),
            "source": np.where(np.arange(n) % 3 == 0, "site B", "site A"),
            "patient_id": [f"p{i // 2}" for i in range(n)],
        }
    )


def test_the_probe_reads_a_source_that_the_features_hold() -> None:
    rows = table()
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(len(rows), 16))
    telling = noise.copy()
    telling[:, 0] += 4.0 * (rows["source"] == "site B").to_numpy()
    found = source_probe(telling, rows)
    blind = source_probe(noise, rows)
    assert found.majority_rate == pytest.approx(2 / 3) and found.n_sources == 2
    assert found.accuracy > 0.95 and found.auroc > 0.95
    assert blind.accuracy < 0.8 and 0.3 < blind.auroc < 0.7


def test_the_probe_needs_two_sources_with_patients_to_spare() -> None:
    rows = table()
    rows.loc[0, "source"] = "site C"  # a source of one patient
    rows.loc[1, "source"] = "site C"
    assert source_probe(np.zeros((len(rows), 4)), rows).n == len(rows) - 2  # left out
    rows["source"] = "site A"
    with pytest.raises(UndefinedMetric, match="1 source"):
        source_probe(np.zeros((len(rows), 4)), rows)


def test_within_source_and_confounding() -> None:
    rows = table(60)
    rows.loc[rows["source"] == "site B", "label"] = 1  # site B: COVID only
    per_source = {s.source: s for s in within_source(rows)}
    assert per_source["site B"].auroc is None and "only COVID" in per_source["site B"].reason
    assert per_source["site A"].auroc is not None
    found = confounding(rows)
    assert found.single_class_sources == {"site B": "COVID"}
    assert found.share_of_images == pytest.approx(20 / 60)


def test_penultimate_features_are_the_heads_input_within_the_block() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(3, 3, 2, 2)
    with PenultimateFeatures(net, "3") as features:
        net(x)
    assert torch.allclose(features.captured, net[:3](x))
    net(torch.randn(3, 3, 2, 2))  # outside the block: not captured again
    assert torch.allclose(features.captured, net[:3](x))
