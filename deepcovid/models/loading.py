"""Load a trained classifier from a Lightning checkpoint without unpickling arbitrary objects.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain values only, so a
malicious file cannot run code. A checkpoint that holds other Python objects is refused with
:class:`UnsafeCheckpointError` unless ``allow_pickle=True`` is passed for a trusted file.
Nothing from a checkpoint is instantiated by name: Lightning passes only the hyper-parameters
that ``CovidClassifier.__init__`` accepts (plain values; the optimizer and scheduler are never
saved and are reset to None here), and refuses an ``_instantiator`` outside its allow-list
(``lightning.pytorch.core.saving._ALLOWED_INSTANTIATORS``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from deepcovid.models.classifier import CovidClassifier


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that only a full (code-executing) unpickle could read."""


def refusal(path: Path, error: pickle.UnpicklingError) -> UnsafeCheckpointError:
    """The error that explains why ``path`` is refused and how to proceed."""
    detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return UnsafeCheckpointError(
        f"{path}: holds Python objects that a weights-only load refuses ({detail}). Unpickling "
        "them would run code from the file. If you trust where it comes from, pass "
        "allow_pickle=true; then re-export it as plain weights with python -m deepcovid.export "
        f"ckpt_path={path} format=safetensors allow_pickle=true"
    )


def existing(ckpt_path: str | Path) -> Path:
    """``ckpt_path`` as a Path, or a FileNotFoundError naming it."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such checkpoint file")
    return path


def read_checkpoint(ckpt_path: str | Path, allow_pickle: bool = False) -> dict:
    """The checkpoint dictionary, read weights-only unless ``allow_pickle``."""
    path = existing(ckpt_path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as error:
        raise refusal(path, error) from error


def load_classifier(
    ckpt_path: str | Path, map_location: str = "cpu", allow_pickle: bool = False
) -> CovidClassifier:
    """A :class:`CovidClassifier` in eval mode, its weights from ``ckpt_path``.

    The backbone is built without downloading ImageNet weights: they are overwritten anyway.
    """
    path = existing(ckpt_path)
    try:
        model = CovidClassifier.load_from_checkpoint(
            path,
            map_location=map_location,
            weights_only=not allow_pickle,
            pretrained=False,
            weights_path=None,
            optimizer=None,
            scheduler=None,
        )
    except pickle.UnpicklingError as error:
        raise refusal(path, error) from error
    return model.eval()


def checkpoint_hparams(ckpt_path: str | Path, allow_pickle: bool = False) -> dict:
    """The hyper-parameters stored in a checkpoint (backbone, finetune, threshold, …)."""
    return dict(read_checkpoint(ckpt_path, allow_pickle).get("hyper_parameters", {}))
