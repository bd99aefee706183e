"""Subgroup tables by the confounder metadata (view, sex, age band, institution, manufacturer):
from the manifest, through the predictions file, into the evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score

from deepcovid.data.samples import read_manifest
from deepcovid.metrics.predictions import Predictions, predictions_frame, read_predictions
from deepcovid.metrics.summary import ModelInfo, summarize
from tests.conftest import CONFIG_DIR, CXR_DEV, chest_like, requires_real_data, save_in_mode


def settings():
    """The shipped metric settings (conf/metrics/default.yaml), with few resamples."""
    conf = OmegaConf.load(CONFIG_DIR / "metrics" / "default.yaml")
    conf.pop("defaults")  # the group's schema, which Hydra composes in
    conf.seed, conf.bootstrap_resamples = 0, 20
    return instantiate(conf)


def evaluated(samples: pd.DataFrame, prob: np.ndarray, tmp_path: Path):
    """The evaluation of ``prob`` on every sample, read back from a written predictions file."""
    index = np.arange(len(samples))
    stored = Predictions(index, samples["label"].to_numpy(), prob, None)
    predictions_frame(stored, samples).to_csv(tmp_path / "test.csv", index=False)
    frame = read_predictions(tmp_path / "test.csv")
    return frame, summarize(frame, None, settings(), 0.5, ModelInfo("resnet18"))


def test_subgroups_by_view_sex_age_band_and_institution(tmp_path: Path) -> None:
    n = 40
    for i in range(n):
        save_in_mode(chest_like(16, i, i % 2 == 0), tmp_path / f"{i}.png", "L")
    pd.DataFrame(
        {
            "path": [f"{i}.png" for i in range(n)],
            "label": ["covid", "non-covid"] * (n // 2),
            "view": (["AP supine", "PA", "pa", "AP"] * n)[:n],
            "sex": (["male", "F"] * n)[:n],
            "age": ([25, 45, "063Y", 85, ""] * n)[:n],
            "institution": (["007", "General"] * n)[: n - 1] + [""],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    samples = read_manifest(tmp_path / "m.csv")
    prob = np.random.default_rng(0).random(n)
    frame, evaluation = evaluated(samples, prob, tmp_path)
    assert frame["institution"].iloc[0] == "007"  # ids stay text through the CSV
    groups = evaluation.subgroups
    assert {"view", "sex", "age_band", "institution"} <= set(groups)
    assert "manufacturer" not in groups  # nobody has one
    assert [g.value for g in groups["view"]] == ["AP", "PA"]
    assert [g.value for g in groups["age_band"]] == ["0–39", "40–59", "60–79", "80+"]
    assert [g.counts.n for g in groups["age_band"]] == [8, 8, 8, 8]  # 8 without an age
    assert [g.value for g in groups["institution"]] == ["007", "General"]
    ap = samples["view"] == "AP"
    (ap_group,) = [g for g in groups["view"] if g.value == "AP"]
    assert ap_group.counts.n == ap.sum() == 20
    assert ap_group.auroc == pytest.approx(roc_auc_score(samples["label"][ap], prob[ap]))


@requires_real_data
def test_cxr_dev_subgroups_by_view(tmp_path: Path) -> None:
    samples = read_manifest(CXR_DEV / "manifest.csv")
    prob = np.random.default_rng(1).random(len(samples))
    _, evaluation = evaluated(samples, prob, tmp_path)
    views = {g.value: g.counts.n for g in evaluation.subgroups["view"]}
    assert views == {"AP": 172, "PA": 239}
