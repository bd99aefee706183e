"""Load a trained classifier from a Lightning checkpoint without unpickling arbitrary objects."""

from __future__ import annotations

from pathlib import Path

import torch

from deepcovid.models.classifier import CovidClassifier


def load_classifier(ckpt_path: str | Path, map_location: str = "cpu") -> CovidClassifier:
    """A :class:`CovidClassifier` in eval mode, its weights from ``ckpt_path``.

    The checkpoint is read with ``weights_only=True`` (tensors and plain values only), and the
    backbone is built without downloading ImageNet weights: they are overwritten anyway.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such checkpoint file")
    model = CovidClassifier.load_from_checkpoint(
        path, map_location=map_location, weights_only=True, pretrained=False, weights_path=None
    )
    return model.eval()


def checkpoint_hparams(ckpt_path: str | Path) -> dict:
    """The hyper-parameters stored in a checkpoint (backbone, finetune, threshold, …)."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    return dict(state.get("hyper_parameters", {}))
