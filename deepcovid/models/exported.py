"""The exported model: writers for safetensors, ONNX and TorchScript, and a reader of the
safetensors export into a plain ``nn.Module`` (no Lightning, no pickle, no network).

An export is ``NAME.<ext>`` (the backbone with its 2-class head; input a float tensor
(N, C, S, S) prepared as the record's preprocessing says, output logits (N, 2)) and
``NAME.<ext>.json`` (one per format, so exports of several formats share a folder): the
model's record (:class:`~deepcovid.models.record.ModelRecord`: backbone,
class names, thresholds, preprocessing, data fingerprint, provenance), the format, the source
checkpoint and the sha256 of the weights, which the reader checks before use.

A safetensors file also carries that description in its own metadata header (each entry a
JSON string) with the sha256 of its tensor bytes (``data_sha256``), so the file alone is
enough to run: :func:`load_exported` reads the JSON beside it when present, else the header.
"""

from __future__ import annotations

import hashlib
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
from deepcovid.utils.choices import choices
from deepcovid.utils.files import atomic_path, sha256_of

METADATA_VERSION = 2
SUFFIXES = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}
DATA_SHA256 = "data_sha256"  # the safetensors header's sha256 of the tensor bytes
DESCRIPTION_KEYS = ("metadata_version", "format", "weights", "model", "input", "output",
                    "source_checkpoint")  # fmt: skip


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


def tensor_data(raw: bytes) -> bytes:
    """The tensor bytes of a safetensors file (after its 8-byte length and JSON header)."""
    header_length = int.from_bytes(raw[:8], "little")
    return raw[8 + header_length :]


def save_safetensors(
    net: nn.Module, path: Path, record: ModelRecord, description: dict[str, Any]
) -> None:
    """The weights, with ``description`` in the header (JSON strings) and the sha256 of the
    tensor bytes (which do not depend on the header) as ``data_sha256``."""
    from safetensors.torch import save

    state = {name: tensor.contiguous() for name, tensor in net.state_dict().items()}
    header = {"format": "pt"} | {key: json.dumps(value) for key, value in description.items()}
    header[DATA_SHA256] = hashlib.sha256(tensor_data(save(state))).hexdigest()
    with atomic_path(path) as partial:
        partial.write_bytes(save(state, metadata=header))


def save_onnx(net: nn.Module, path: Path, record: ModelRecord, description: dict[str, Any]) -> None:
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


def save_torchscript(
    net: nn.Module, path: Path, record: ModelRecord, description: dict[str, Any]
) -> None:
    with atomic_path(path) as partial:
        torch.jit.save(torch.jit.trace(net, example_input(record, 1)), str(partial))


WRITERS: dict[str, Callable[[nn.Module, Path, ModelRecord, dict[str, Any]], None]] = {
    "safetensors": save_safetensors,
    "onnx": save_onnx,
    "torchscript": save_torchscript,
}
ExportFormat = choices("ExportFormat", WRITERS)  # export's format


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
    if not overwrite:
        refuse_overwrite(weights)
    channels = record.preprocessing.channels
    description = {
        "metadata_version": METADATA_VERSION,
        "format": fmt,
        "weights": weights.name,
        "model": record.to_metadata(),
        "input": f"float32 (N, {channels}, image_size, image_size): {record.preprocessing.steps}",
        "output": "logits (N, 2); P(COVID) = softmax(logits)[:, 1]",
        "source_checkpoint": source,
    }
    with torch.no_grad():
        WRITERS[fmt](net, weights, record, description)
    meta = description | {"sha256": sha256_of(weights)}
    with atomic_path(metadata_path(weights)) as partial:
        partial.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def check_version(meta: dict[str, Any], where: Path) -> None:
    if meta.get("metadata_version") != METADATA_VERSION:
        raise ExportError(
            f"{where}: metadata_version {meta.get('metadata_version')!r}, expected "
            f"{METADATA_VERSION}; re-export with this version of deepcovid"
        )


def header_metadata(weights: Path) -> dict[str, Any]:
    """The description a safetensors file carries in its header, after checking its version
    and the sha256 of its tensor bytes."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as opened:
        header = opened.metadata() or {}
    if DATA_SHA256 not in header:
        raise ExportError(
            f"{weights}: its header holds no record and {metadata_path(weights).name} is not "
            "beside it; copy that file too, or re-export with this version of deepcovid"
        )
    meta = {key: json.loads(value) for key, value in header.items() if key in DESCRIPTION_KEYS}
    check_version(meta, weights)
    if hashlib.sha256(tensor_data(weights.read_bytes())).hexdigest() != header[DATA_SHA256]:
        raise ExportError(
            f"{weights}: its tensors differ from the sha256 in its header: the weights were "
            "altered or truncated in transit; copy the export again"
        )
    return meta


def read_metadata(weights: str | Path) -> dict[str, Any]:
    """The export's description: its JSON (checked against the weights file byte for byte),
    or, for a safetensors file without one, its header (:func:`header_metadata`)."""
    weights = Path(weights)
    meta_file = metadata_path(weights)
    if weights.is_file() and weights.suffix == SUFFIXES["safetensors"] and not meta_file.exists():
        return header_metadata(weights)
    if not weights.is_file() or not meta_file.is_file():
        raise ExportError(
            f"{weights}: an export needs both {weights.name} and {meta_file.name}; re-run "
            "python -m deepcovid.export"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    check_version(meta, meta_file)
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
    return ExportedClassifier(net, record, sha256_of(path)).eval()
