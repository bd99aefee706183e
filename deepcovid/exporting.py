"""Export a trained checkpoint as safetensors, ONNX or TorchScript, plus a JSON describing it.

Every format exports the backbone with its 2-class head: input a float tensor (N, 3, S, S)
prepared as the JSON's ``preprocessing`` says, output logits (N, 2) with P(COVID) =
softmax(logits)[:, 1]. The JSON also records the class names, the decision threshold, the
Grad-CAM target layer, the source checkpoint and the sha256 of the weights file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from deepcovid import CLASS_NAMES, __version__
from deepcovid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from deepcovid.models.classifier import CovidClassifier
from deepcovid.models.loading import load_classifier
from deepcovid.models.standalone import METADATA_VERSION, metadata_path
from deepcovid.utils.files import atomic_path, sha256_of, write_json_atomic

log = logging.getLogger(__name__)
SUFFIXES = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}
PREPROCESSING_KEYS = ("image_size", "crop_ratio", "mean", "std")
PREPROCESSING_STEPS = (
    "load_image (8-bit grayscale), resize the short side to image_size / crop_ratio, center "
    "crop image_size x image_size, scale to [0, 1], repeat to 3 channels, normalise by mean/std"
)


def run_preprocessing(ckpt_path: Path) -> dict[str, Any]:
    """Eval preprocessing of the training run a checkpoint comes from, read (never
    instantiated) from ``RUN/.hydra/config.yaml`` for ``RUN/checkpoints/FILE.ckpt``."""
    config_file = ckpt_path.resolve().parent.parent / ".hydra" / "config.yaml"
    if not config_file.is_file():
        return {}
    data = OmegaConf.load(config_file).data
    transform = data.get("eval_transform") or {}
    found = {
        "image_size": data.get("image_size"),
        "crop_ratio": transform.get("crop_ratio"),
        "mean": transform.get("mean"),
        "std": transform.get("std"),
    }
    return {key: value for key, value in found.items() if value is not None}


def preprocessing(ckpt_path: Path, given: dict[str, Any]) -> dict[str, Any]:
    """Preprocessing to record: values given in the config win over the training run's;
    mean/std default to ImageNet's; image_size and crop_ratio must be known."""
    found = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    found |= run_preprocessing(ckpt_path)
    found |= {key: value for key, value in given.items() if value is not None}
    missing = [key for key in PREPROCESSING_KEYS if key not in found]
    if missing:
        raise ValueError(
            f"{ckpt_path}: no training-run config beside it (../.hydra/config.yaml) to read "
            f"{missing} from; pass them, e.g. image_size=224 crop_ratio=0.875"
        )
    found = {
        key: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for key, v in found.items()
    }
    return {
        "image_size": int(found["image_size"]),
        "crop_ratio": float(found["crop_ratio"]),
        "mean": [float(v) for v in found["mean"]],
        "std": [float(v) for v in found["std"]],
        "steps": PREPROCESSING_STEPS,
    }


def save_safetensors(net: nn.Module, path: Path, image_size: int) -> None:
    from safetensors.torch import save

    state = {name: tensor.contiguous() for name, tensor in net.state_dict().items()}
    with atomic_path(path) as partial:
        partial.write_bytes(save(state, metadata={"format": "pt"}))


def save_onnx(net: nn.Module, path: Path, image_size: int) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f"format=onnx needs the onnx and onnxscript packages ({error}); install them with "
            "pip install 'deepcovid[export]'"
        ) from error
    example = torch.zeros(2, 3, image_size, image_size)
    with atomic_path(path) as partial:
        program = torch.onnx.export(
            net,
            (example,),
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            verbose=False,
        )
        program.save(str(partial))


def save_torchscript(net: nn.Module, path: Path, image_size: int) -> None:
    example = torch.zeros(1, 3, image_size, image_size)
    with atomic_path(path) as partial:
        torch.jit.save(torch.jit.trace(net, example), str(partial))


WRITERS: dict[str, Callable[[nn.Module, Path, int], None]] = {
    "safetensors": save_safetensors,
    "onnx": save_onnx,
    "torchscript": save_torchscript,
}


def metadata(
    model: CovidClassifier, fmt: str, weights: Path, ckpt_path: Path, prep: dict[str, Any]
) -> dict[str, Any]:
    """The JSON written beside the weights."""
    return {
        "metadata_version": METADATA_VERSION,
        "format": fmt,
        "weights": weights.name,
        "sha256": sha256_of(weights),
        "backbone": model.hparams.backbone,
        "num_classes": model.hparams.num_classes,
        "class_names": list(CLASS_NAMES),
        "positive_class": 1,
        "threshold": float(model.hparams.threshold),
        "target_layer": model.target_layer,
        "preprocessing": prep,
        "input": "float32 (N, 3, image_size, image_size), see preprocessing",
        "output": "logits (N, 2); P(COVID) = softmax(logits)[:, 1]",
        "source_checkpoint": str(ckpt_path),
        "deepcovid_version": __version__,
    }


def export(
    ckpt_path: str | Path,
    fmt: str,
    output_dir: str | Path,
    name: str = "model",
    preprocessing_given: dict[str, Any] | None = None,
    allow_pickle: bool = False,
) -> Path:
    """Write ``output_dir/NAME.<ext>`` and ``output_dir/NAME.json``; return the weights path."""
    if fmt not in WRITERS:
        raise ValueError(f"format={fmt!r}; choose one of {list(WRITERS)}")
    ckpt_path = Path(ckpt_path)
    prep = preprocessing(ckpt_path, preprocessing_given or {})
    model = load_classifier(ckpt_path, allow_pickle=allow_pickle)
    weights = Path(output_dir) / f"{name}{SUFFIXES[fmt]}"
    with torch.no_grad():
        WRITERS[fmt](model.net, weights, prep["image_size"])
    write_json_atomic(metadata(model, fmt, weights, ckpt_path, prep), metadata_path(weights))
    log.info("exported %s as %s to %s (+ %s)", ckpt_path, fmt, weights, metadata_path(weights).name)
    return weights
