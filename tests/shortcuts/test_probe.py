"""The probe of a grouping (here the source) finds what the features hold; per source AUROC,
confounding."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.shortcuts.confounders import audit_confounder, strata_aurocs
from deepcovid.shortcuts.flags import confounder_findings
from deepcovid.shortcuts.probe import GroupProbe, PenultimateFeatures, group_probe
from deepcovid.shortcuts.result import AuditSettings


def source_probe(features: np.ndarray, rows: pd.DataFrame) -> GroupProbe:
    return group_probe(features, rows, "source")[0]


def source_findings(rows: pd.DataFrame, probe: GroupProbe) -> list[str]:
    audited = audit_confounder(rows, "source", probe, 100, 0.95, 0)
    result = SimpleNamespace(confounders={"source": audited}, confidence=0.95)
    return confounder_findings(result, AuditSettings())


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
    assert found.majority_rate == pytest.approx(2 / 3) and found.n_values == 2
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
    per_source = {s.value: s for s in strata_aurocs(rows, "source", 100, 0.95, 0)}
    assert per_source["site B"].auroc is None and "only COVID" in per_source["site B"].reason
    assert per_source["site A"].auroc is not None
    found = audit_confounder(rows, "source", "not probed", 100, 0.95, 0)
    assert found.single_class == {"site B": "COVID"}
    assert found.single_class_share == pytest.approx(20 / 60)


def test_penultimate_features_are_the_heads_input_within_the_block() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))
    x = torch.randn(3, 3, 2, 2)
    with PenultimateFeatures(net, "3") as features:
        net(x)
    assert torch.allclose(features.captured, net[:3](x))
    net(torch.randn(3, 3, 2, 2))  # outside the block: not captured again
    assert torch.allclose(features.captured, net[:3](x))


def confounded_sources(seed: int = 0) -> pd.DataFrame:
    """Issue 20's case: site A holds both classes (23 + 23), site B COVID only (37), site C
    non-COVID only (35); most common source 39 %, the label alone names the source for 61 %."""
    rng = np.random.default_rng(seed)
    label = np.array([1] * 23 + [0] * 23 + [1] * 37 + [0] * 35)
    source = ["site A"] * 46 + ["site B"] * 37 + ["site C"] * 35
    n = len(label)
    return pd.DataFrame(
        {"path": [f"x{i}.png" for i in range(n)], "label": label, "prob_covid": rng.random(n),
         "source": source, "patient_id": [f"p{i}" for i in range(n)]}
    )  # fmt: skip


def test_features_holding_only_the_label_are_not_said_to_tell_sources_apart() -> None:
    """Features = the label + noise. The probe used to be judged against the most common source
    only: 'tell the 3 sources apart: 57 % vs 39 %' (flagged). Against the label alone (61 %)
    it adds nothing, and within each class it is no better than that class's commonest source."""
    rows = confounded_sources()
    rng = np.random.default_rng(1)
    features = rng.normal(size=(len(rows), 2))
    features[:, 0] += 6.0 * rows["label"].to_numpy()
    probe = source_probe(features, rows)
    assert probe.majority_rate == pytest.approx(46 / 118)
    assert probe.label_only_accuracy == pytest.approx(72 / 118)
    assert probe.accuracy - probe.majority_rate >= 0.1  # what the old flag fired on
    assert probe.accuracy < probe.label_only_accuracy + 0.1
    assert set(probe.within_class) == {"COVID", "non-COVID"}
    for within in probe.within_class.values():
        assert within.accuracy < within.majority_rate + 0.1 and within.n_values == 2
    assert not any("values apart" in f for f in source_findings(rows, probe))
    print(f"probe {probe.accuracy:.3f}, label only {probe.label_only_accuracy:.3f}, "
          f"majority {probe.majority_rate:.3f}")  # fmt: skip


def test_features_that_tell_the_sources_apart_within_a_class_are_flagged() -> None:
    rows = confounded_sources()
    rng = np.random.default_rng(1)
    features = rng.normal(size=(len(rows), 8))
    features[:, 0] += 3.0 * rows["label"].to_numpy()
    features[:, 1] += 4.0 * (rows["source"] == "site A").to_numpy()  # the hospital's look
    probe = source_probe(features, rows)
    assert probe.accuracy > 0.85 and probe.within_class["COVID"].accuracy > 0.85
    flags = source_findings(rows, probe)
    assert any("beyond what the label says" in f for f in flags)
    assert any("within the 60 COVID images alone" in f for f in flags)


def test_the_folds_say_whether_they_were_grouped_by_patient() -> None:
    rows = table()
    features = np.random.default_rng(2).normal(size=(len(rows), 4))
    assert source_probe(features, rows).folds_text.endswith("patient-grouped folds")
    rows.loc[:9, "patient_id"] = None
    partly = source_probe(features, rows).folds_text
    assert "patient-grouped folds (10 images without a patient id" in partly
    rows["patient_id"] = None
    assert "image-level folds (no image has a patient id" in source_probe(features, rows).folds_text
