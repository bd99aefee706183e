"""Reseeding at each epoch start: an epoch's random draws depend only on (seed, epoch)."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepcovid.callbacks.reseed import ReseedEveryEpoch


class Toy(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.layer(x).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_reseed_makes_each_epoch_depend_only_on_seed_and_epoch() -> None:
    class Draws(L.Callback):
        def __init__(self) -> None:
            self.draws: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.draws.append(torch.rand(1).item())

    def run(noise: int) -> list[float]:
        torch.rand(noise)  # earlier random draws must not matter
        draws = Draws()
        trainer = L.Trainer(
            max_epochs=3,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            callbacks=[ReseedEveryEpoch(7), draws],
        )
        trainer.fit(Toy(), DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4))
        return draws.draws

    first = run(1)
    assert first == run(5)
    assert len(set(first)) == 3  # a different stream per epoch
