"""Checkpoint files written atomically on any filesystem layout.

Lightning's ``TorchCheckpointIO`` saves through ``_atomic_save``, an fsspec transaction that
writes a temporary file in the *system* temp folder and ``shutil.move``s it into place: a
rename only when ``TMPDIR`` is on the checkpoint's filesystem, otherwise a copy that a crash
can cut short at the destination, and never fsynced. Here the temporary file sits beside the
target, is fsynced, and is renamed (:func:`deepcovid.atomic.atomic_path`).
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from deepcovid.utils.files import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves go through a temporary file and a rename."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):  # remote: Lightning's own way
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_path(path) as partial:
            torch.save(checkpoint, partial)
