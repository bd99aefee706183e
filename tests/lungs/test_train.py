"""``deepcovid.lungs.train`` end to end on generated chests (tiny network, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from deepcovid.lungs.segmenter import load_segmenter
from deepcovid.lungs.train import train_segmenter
from deepcovid.utils.config import compose_config
from tests.lungs.conftest import write_chests


@pytest.fixture
def generated_source(tmp_path: Path) -> Path:
    """12 chests of 6 patients, 10 with a lung_mask; 2 without (the gallery's)."""
    paths = write_chests(tmp_path / "data", 12)
    frame = pd.DataFrame(
        {
            "path": [p.name for p in paths],
            "patient_id": [f"p{i // 2}" for i in range(12)],
            "lung_mask": [f"masks/{p.name}" for p in paths[:10]] + ["", ""],
        }
    )
    frame.to_csv(tmp_path / "data" / "manifest.csv", index=False)
    return tmp_path / "data" / "manifest.csv"


def test_training_writes_weights_evaluation_and_figures(generated_source: Path, tmp_path) -> None:
    out = tmp_path / "run"
    overrides = [
        "use_v7_masks=false",
        "working_size=32",
        "model.base_channels=4",
        "model.depth=2",
        "epochs=2",
        "batch_size=4",
        "heldout_fraction=0.34",
        "bootstrap_resamples=50",
        "figures.gallery_sources=[gen]",
        "figures.worst=2",
    ]
    cfg = compose_config("lungs_train", overrides, str(out))
    cfg.sources = {"gen": str(generated_source)}
    result = train_segmenter(cfg)
    for name in (
        "lung_unet.safetensors",
        "lung_unet.json",
        "evaluation.json",
        "heldout_scores.csv",
        "worst_heldout.png",
        "unlabelled.png",
        "unlabelled.csv",
    ):
        assert (out / name).is_file(), name
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["n_train_images"] + evaluation["n_heldout_images"] == 10
    assert evaluation["n_unlabelled"] == 2 and len(evaluation["epoch_losses"]) == 2
    assert 0.0 <= evaluation["summary"]["gen"]["dice"]["mean"] <= 1.0
    assert result["summary"]["gen"]["dice"] == evaluation["summary"]["gen"]["dice"]
    scores = pd.read_csv(out / "heldout_scores.csv")
    card = json.loads((out / "lung_unet.json").read_text())
    assert sorted(Path(p).name for p in scores["path"]) == card["training"]["heldout"]
    segmenter = load_segmenter(out / "lung_unet.safetensors")
    assert segmenter.working_size == 32
