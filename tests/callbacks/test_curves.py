"""Validation curves at each val epoch end: the curve of the gathered val predictions, as a PNG
without W&B and as W&B tables with it."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepcovid.metrics.discrimination import roc_curve
from deepcovid.models.checkpoints import read_record
from deepcovid.results import figures
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from deepcovid.utils.files import save_figure
from tests.conftest import tiny_overrides


def train_tiny(root: Path, out: Path, *extra: str) -> None:
    overrides = tiny_overrides(root, out, "data.val_fraction=0.25", "test=false", *extra)
    train(compose_config("train", overrides, output_dir=str(out)))


def test_png_curves_draw_the_val_predictions_of_each_epoch(covidx5k_shared, tmp_path):
    train_tiny(covidx5k_shared, tmp_path, "trainer.max_epochs=2")
    written = sorted(p.name for p in (tmp_path / "plots" / "val").iterdir())
    assert written == ["pr-epoch000.png", "pr-epoch001.png", "roc-epoch000.png", "roc-epoch001.png"]
    # last.ckpt carries the val predictions of epoch 1: its ROC, drawn again, is the PNG
    val = read_record(tmp_path / "checkpoints" / "last.ckpt").val_predictions
    curve = roc_curve(val["label"].to_numpy(), val["prob_covid"].to_numpy())
    again = save_figure(figures.roc_figure({"epoch 1": curve}), tmp_path / "again.png")
    with Image.open(again) as expected, Image.open(tmp_path / "plots/val/roc-epoch001.png") as png:
        assert np.array_equal(np.asarray(expected), np.asarray(png))
    with Image.open(tmp_path / "plots/val/roc-epoch000.png") as other:
        assert not np.array_equal(np.asarray(other), np.asarray(Image.open(again)))


def test_every_n_epochs(covidx5k_shared: Path, tmp_path: Path) -> None:
    train_tiny(
        covidx5k_shared,
        tmp_path,
        "trainer.max_epochs=2",
        "callbacks.validation_curves.every_n_epochs=2",
    )
    assert sorted(p.name for p in (tmp_path / "plots" / "val").iterdir()) == [
        "pr-epoch000.png",
        "roc-epoch000.png",
    ]


@pytest.mark.slow
def test_wandb_line_plots_hold_the_curve(covidx5k_shared: Path, tmp_path: Path) -> None:
    overrides = [o for o in tiny_overrides(covidx5k_shared, tmp_path) if o != "logger=csv"]
    cfg = compose_config(
        "train",
        [*overrides, "logger=wandb", "logger.wandb.mode=offline", "data.val_fraction=0.25"],
        output_dir=str(tmp_path),
    )
    cfg.test = False
    train(cfg)
    assert not (tmp_path / "plots" / "val").exists()  # W&B instead of PNGs
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    val = read_record(tmp_path / "checkpoints" / "last.ckpt").val_predictions
    expected = roc_curve(val["label"].to_numpy(), val["prob_covid"].to_numpy())
    (table,) = run.glob("files/media/table/val/roc_curve_table_*.table.json")
    content = json.loads(table.read_text())
    assert content["columns"] == ["fpr", "tpr", "threshold"]
    rows = np.array([row[:2] for row in content["data"]], dtype=float)
    np.testing.assert_allclose(rows, np.column_stack([expected.x, expected.y]), atol=1e-6)
    (pr,) = run.glob("files/media/table/val/pr_curve_table_*.table.json")
    assert json.loads(pr.read_text())["columns"][:2] == ["recall", "precision"]
