"""The exported model: writers for safetensors, ONNX and TorchScript, and a reader of the
safetensors export into a plain ``nn.Module`` (no Lightning, no pickle, no network).

An export is two files: ``NAME.<ext>`` (the backbone with its 2-class head; input a float
tensor (N, C, S, S) prepared as the record's preprocessing says, output logits (N, 2)) and
``NAME.<ext>.json`` (one per format, so exports of several formats share a folder): the
model's record (:class:`~deepcovid.models.record.ModelRecord`: backbone,
class names, thresholds, preprocessing, data fingerprint, provenance), the format, the source
checkpoint and the sha256 of the weights, which the reader checks before use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepcovid.data.transforms import EvalPreset
from deepcovid.metrics.scores import prob_covid
from deepcovid.models.backbones import create_backbone
from deepcovid.models.record import ModelRecord
from deepcovid.utils.files import atomic_path, sha256_of

METADATA_VERSION = 2
SUFFIXES = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}


class ExportError(ValueError):
    """An export that is incomplete, altered or of an unknown version; the message says which."""


def metadata_path(weights: str | Path) -> Path:
    """The JSON written beside an exported weights file: ``NAME.<ext>.json``."""
    weights = Path(weights)
    return weights.with_name(f"{weights.name}.json")


def refuse_overwrite(weights: Path) -> None:
    """FileExistsError naming ``weights`` (or its JSON) when an export is already there."""
    for existing in (weights, metadata_path(weights)):
        if existing.exists():
            raise FileExistsError(
                f"{existing}: an export is already there; pass overwrite=true to replace it, "
                "or another output_dir or name"
            )


def example_input(record: ModelRecord, batch: int) -> torch.Tensor:
    size = record.preprocessing.image_size
    return torch.zeros(batch, record.preprocessing.channels, size, size)


def save_safetensors(net: nn.Module, path: Path, record: ModelRecord) -> None:
    from safetensors.torch import save

    state = {name: tensor.contiguous() for name, tensor in net.state_dict().items()}
    with atomic_path(path) as partial:
        partial.write_bytes(save(state, metadata={"format": "pt"}))


def save_onnx(net: nn.Module, path: Path, record: ModelRecord) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f"format=onnx needs the onnx and onnxscript packages ({error}); install them with "
            "pip install 'deepcovid[export]'"
        ) from error
    with atomic_path(path) as partial:
        program = torch.onnx.export(
            net,
            (example_input(record, 2),),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            verbose=False,
        )
        program.save(str(partial))


def save_torchscript(net: nn.Module, path: Path, record: ModelRecord) -> None:
    with atomic_path(path) as partial:
        torch.jit.save(torch.jit.trace(net, example_input(record, 1)), str(partial))


WRITERS: dict[str, Callable[[nn.Module, Path, ModelRecord], None]] = {
    "safetensors": save_safetensors,
    "onnx": save_onnx,
    "torchscript": save_torchscript,
}


def write_export(
    net: nn.Module,
    record: ModelRecord,
    fmt: str,
    weights: Path,
    source: str,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``weights`` in ``fmt`` and its JSON; return the JSON's content. An existing
    export at ``weights`` is refused unless ``overwrite``."""
    if fmt not in WRITERS:
        raise ValueError(f"format={fmt!r}; choose one of {list(WRITERS)}")
    if not overwrite:
        refuse_overwrite(weights)
    with torch.no_grad():
        WRITERS[fmt](net, weights, record)
    channels = record.preprocessing.channels
    meta = {
        "metadata_version": METADATA_VERSION,
        "format": fmt,
        "weights": weights.name,
        "sha256": sha256_of(weights),
        "model": record.to_metadata(),
        "input": f"float32 (N, {channels}, image_size, image_size): {record.preprocessing.steps}",
        "output": "logits (N, 2); P(COVID) = softmax(logits)[:, 1]",
        "source_checkpoint": source,
    }
    with atomic_path(metadata_path(weights)) as partial:
        partial.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


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
    P(COVID) (N,); ``record`` and ``eval_transform`` say how its input is made."""

    def __init__(self, net: nn.Module, record: ModelRecord, sha256: str) -> None:
        super().__init__()
        self.net = net
        self.record = record
        self.sha256 = sha256
        self.target_layer = record.target_layer
        self.eval_transform = EvalPreset(record.preprocessing)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, 2)."""
        return self.net(images)

    def prob_covid(self, images: torch.Tensor) -> torch.Tensor:
        """P(COVID) of shape (N,), in float32."""
        return prob_covid(self(images))


def load_exported(path: str | Path, map_location: str = "cpu") -> ExportedClassifier:
    """An :class:`ExportedClassifier` in eval mode from ``NAME.safetensors`` and its
    ``NAME.safetensors.json``."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta["format"] != "safetensors":
        raise ExportError(f"{path}: a {meta['format']} export; load_exported reads safetensors")
    record = ModelRecord.from_checkpoint(meta["model"])
    net = create_backbone(record.backbone, pretrained=False).net
    net.load_state_dict(load_file(path, device=map_location))
    return ExportedClassifier(net, record, meta["sha256"]).eval()
