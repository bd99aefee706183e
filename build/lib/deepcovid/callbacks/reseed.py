"""Reseed every random generator at the start of each training epoch.

An epoch's shuffling, augmentations and dropout then depend only on (seed, epoch), not on how
many random numbers earlier epochs (or a sanity check) drew, so a run resumed from an
epoch-end checkpoint (``ckpt_path=last``) continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import lightning as L
from lightning.fabric.utilities.seed import seed_everything


class ReseedEveryEpoch(L.Callback):
    """Call ``seed_everything(seed + epoch)`` before each training epoch."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seed_everything(self.seed + trainer.current_epoch, workers=True, verbose=False)
