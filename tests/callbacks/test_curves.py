"""Validation curves at each val epoch end: PNG files without W&B, W&B tables with it."""

import json
from pathlib import Path

import pytest

from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.conftest import tiny_overrides


def train_tiny(root: Path, out: Path, *extra: str) -> None:
    overrides = tiny_overrides(root, out, "data.val_fraction=0.25", "test=false", *extra)
    train(compose_config("train", overrides, output_dir=str(out)))


def test_png_curves_for_every_validation_epoch(covidx5k_shared: Path, tmp_path: Path) -> None:
    train_tiny(covidx5k_shared, tmp_path, "trainer.max_epochs=2")
    written = sorted(p.name for p in (tmp_path / "plots" / "val").iterdir())
    assert written == ["pr-epoch000.png", "pr-epoch001.png", "roc-epoch000.png", "roc-epoch001.png"]
    assert all((tmp_path / "plots" / "val" / name).stat().st_size > 5_000 for name in written)


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
def test_wandb_line_plots_with_their_tables(covidx5k_shared: Path, tmp_path: Path) -> None:
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
    for name, columns in (("roc", ["fpr", "tpr", "threshold"]), ("pr", ["recall", "precision"])):
        (table,) = run.glob(f"files/media/table/val/{name}_curve_table_*.table.json")
        content = json.loads(table.read_text())
        assert content["columns"][: len(columns)] == columns and len(content["data"]) >= 2
