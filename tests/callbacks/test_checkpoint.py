"""The best checkpoint: an AUROC tie goes to the lower val loss, not to the earliest epoch."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepcovid.callbacks.checkpoint import BestCheckpoint, monitor_mode


class Scripted(L.LightningModule):
    """Logs the given val/auroc and val/loss at each epoch."""

    def __init__(self, aurocs: list[float], losses: list[float]) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)
        self.aurocs, self.losses = aurocs, losses

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx) -> None:
        epoch = self.current_epoch
        self.log("val/auroc", self.aurocs[epoch])
        self.log("val/loss", self.losses[epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def best_epoch(callback: ModelCheckpoint, tmp_path: Path, aurocs, losses) -> int:
    data = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = L.Trainer(
        max_epochs=len(aurocs), callbacks=[callback], logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(Scripted(aurocs, losses), data, data)
    return int(torch.load(callback.best_model_path, weights_only=False)["epoch"])


@pytest.mark.parametrize(
    ("aurocs", "losses", "expected"),
    [
        ([0.75, 0.75, 0.75], [0.9, 0.5, 0.7], 1),  # a tie: the lowest loss wins
        ([0.75, 0.80, 0.80], [0.3, 0.9, 0.6], 2),  # a better AUROC wins, then the tie-break
        ([0.80, 0.75, 0.80], [0.5, 0.1, 0.6], 0),  # a tie with a higher loss keeps the first
    ],
)
def test_ties_are_broken_by_val_loss(tmp_path, aurocs, losses, expected) -> None:
    callback = BestCheckpoint("val/auroc", dirpath=tmp_path / "best", filename="{epoch}")
    assert best_epoch(callback, tmp_path, aurocs, losses) == expected
    lightning = ModelCheckpoint(
        dirpath=tmp_path / "plain", filename="{epoch}", monitor="val/auroc", mode="max"
    )
    if expected:  # Lightning's own keeps the earliest of equal scores
        assert best_epoch(lightning, tmp_path, aurocs, losses) < expected


def test_mode_follows_the_metric() -> None:
    assert monitor_mode("val/auroc") == "max" and monitor_mode("val/loss") == "min"
    assert BestCheckpoint("val/loss").mode == "min"


def test_select_last_tests_the_last_epoch_not_the_best_by_val(tmp_path) -> None:
    """A fixed epoch budget: the kept checkpoint was not chosen on the val images."""
    aurocs, losses = [0.90, 0.60, 0.70], [0.1, 0.2, 0.3]
    best = BestCheckpoint("val/auroc", dirpath=tmp_path / "best", filename="{epoch}")
    last = BestCheckpoint("val/auroc", select="last", dirpath=tmp_path / "last", filename="{epoch}")
    assert best_epoch(best, tmp_path, aurocs, losses) == 0
    assert best_epoch(last, tmp_path, aurocs, losses) == 2
    assert [p.name for p in (tmp_path / "last").iterdir()] == ["epoch=2.ckpt"]
    # at construction, before fit: the callbacks group is a dict of _target_s, no schema
    with pytest.raises(
        ValueError,
        match=r"^callbacks\.model_checkpoint\.select='first'; choose one of \['best', 'last'\]$",
    ):
        BestCheckpoint("val/auroc", select="first")


def test_select_is_a_config_knob_that_names_the_file(tmp_path) -> None:
    from hydra.utils import instantiate

    from deepcovid.utils.config import compose_config

    cfg = compose_config("train", ["callbacks.model_checkpoint.select=last"], str(tmp_path))
    callback = instantiate(cfg.callbacks.model_checkpoint)
    assert callback.select == "last" and callback.filename == "last-epoch{epoch:03d}"
    default = compose_config("train", [], str(tmp_path)).callbacks.model_checkpoint
    assert default.select == "best" and default.filename == "best-epoch{epoch:03d}"
