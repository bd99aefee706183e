"""Load a safetensors export (``python -m deepcovid.export format=safetensors``) into a plain
``nn.Module``: no Lightning, no pickle, no network.

The export is two files: ``NAME.safetensors`` (the backbone's tensors) and ``NAME.json``
(backbone, class names, threshold, preprocessing and the weights' sha256, see
:mod:`deepcovid.exporting`). The weights are checked against that hash before use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepcovid.data.transforms import EvalPreset
from deepcovid.models.backbones import create_backbone
from deepcovid.utils.files import sha256_of

METADATA_VERSION = 1


class ExportError(ValueError):
    """An export that is incomplete, altered or of an unknown version; the message says which."""


def metadata_path(weights: str | Path) -> Path:
    """The JSON written beside an exported weights file."""
    return Path(weights).with_suffix(".json")


def read_metadata(weights: str | Path) -> dict[str, Any]:
    """The export's JSON, after checking it exists, is of a known version and matches the
    weights file byte for byte."""
    weights = Path(weights)
    meta_file = metadata_path(weights)
    if not weights.is_file() or not meta_file.is_file():
        raise ExportError(
            f"{weights}: an export needs both {weights.name} and {meta_file.name}; re-run "
            "python -m deepcovid.export"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("metadata_version") != METADATA_VERSION:
        raise ExportError(
            f"{meta_file}: metadata_version {meta.get('metadata_version')!r}, expected "
            f"{METADATA_VERSION}; re-export with this version of deepcovid"
        )
    if sha256_of(weights) != meta["sha256"]:
        raise ExportError(
            f"{weights}: sha256 differs from {meta_file.name}: the weights were altered or "
            "truncated in transit; copy the export again"
        )
    return meta


class ExportedClassifier(nn.Module):
    """A backbone with its 2-class head: ``forward`` gives logits (N, 2), ``prob_covid``
    P(COVID) (N,); ``eval_transform`` turns a grayscale PIL image into its input tensor."""

    def __init__(self, net: nn.Module, meta: dict[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.meta = meta
        self.backbone: str = meta["backbone"]
        self.class_names: list[str] = list(meta["class_names"])
        self.threshold: float = float(meta["threshold"])
        self.target_layer: str = meta["target_layer"]
        preprocessing = meta["preprocessing"]
        self.eval_transform = EvalPreset(
            image_size=preprocessing["image_size"],
            crop_ratio=preprocessing["crop_ratio"],
            mean=preprocessing["mean"],
            std=preprocessing["std"],
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, 2)."""
        return self.net(images)

    def prob_covid(self, images: torch.Tensor) -> torch.Tensor:
        """P(COVID) of shape (N,)."""
        return self(images).softmax(dim=1)[:, 1]


def load_exported(path: str | Path, map_location: str = "cpu") -> ExportedClassifier:
    """An :class:`ExportedClassifier` in eval mode from ``NAME.safetensors`` + ``NAME.json``."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta["format"] != "safetensors":
        raise ExportError(f"{path}: a {meta['format']} export; load_exported reads safetensors")
    built = create_backbone(meta["backbone"], pretrained=False, num_classes=meta["num_classes"])
    built.net.load_state_dict(load_file(path, device=map_location))
    return ExportedClassifier(built.net, meta).eval()
