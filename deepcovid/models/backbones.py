"""Backbone registry: a name → a pretrained CNN with a 2-class head, frozen as asked.

Each backbone is described as data (:class:`BackboneSpec`): how to build it, which layer is its
classification head and which its last conv block (Grad-CAM), the preprocessing its weights
expect, and what those weights were trained on. The paper's four come from torchvision,
torchxrayvision's chest-X-ray weights from :mod:`deepcovid.models.xrv`; any other name is
looked up in timm's registry, whose ``pretrained_cfg`` supplies the same facts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from deepcovid.data.transforms import Preprocessing
from deepcovid.models.provenance import WeightsFile
from deepcovid.models.xrv import XRV_WEIGHTS, build_xrv, download_weights, read_xrv_file
from deepcovid.utils.choices import choices

log = logging.getLogger(__name__)
FINETUNE_MODES = ("head", "full")
Finetune = choices("Finetune", FINETUNE_MODES)  # model.finetune's type
IMAGENET_1K = ("ImageNet-1k",)


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone as data: builder and weights, head and Grad-CAM layer, the preprocessing
    its weights expect, and the corpora they were trained on (provenance)."""

    builder: str  # torchvision.models.get_model name
    weights: str  # weights enum member, e.g. "IMAGENET1K_V1"
    head: str  # dotted path of the classification layer to replace
    target_layer: str  # dotted path of the last conv block (for Grad-CAM)
    preprocessing: Preprocessing = Preprocessing()
    pretrained_on: tuple[str, ...] = IMAGENET_1K


# The paper's backbones, with the ImageNet weights of its time (torchvision's V1).
TORCHVISION_BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec("resnet18", "IMAGENET1K_V1", "fc", "layer4"),
    "resnet50": BackboneSpec("resnet50", "IMAGENET1K_V1", "fc", "layer4"),
    "squeezenet": BackboneSpec("squeezenet1_0", "IMAGENET1K_V1", "classifier.1", "features"),
    "densenet121": BackboneSpec("densenet121", "IMAGENET1K_V1", "classifier", "features"),
}


@dataclass
class Backbone:
    """A built network and what the rest of deepcovid needs to know about it."""

    net: nn.Module
    head: str
    target_layer: str
    preprocessing: Preprocessing
    pretrained_on: tuple[str, ...]
    weights_file: WeightsFile | None = None  # where the starting weights were read from


class UnknownBackboneError(ValueError):
    """A model name that is neither a paper backbone nor a timm model."""


def replace_layer(net: nn.Module, path: str, layer: nn.Module) -> None:
    """Put ``layer`` at dotted ``path`` inside ``net``."""
    parent_path, _, name = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    setattr(parent, name, layer)


def new_head(old: nn.Module, num_classes: int) -> nn.Module:
    """A freshly initialised layer like ``old`` with ``num_classes`` outputs."""
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, num_classes)
    if isinstance(old, nn.Conv2d):
        return nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride)
    raise TypeError(f"cannot replace a classification head of type {type(old).__name__}")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a ``.safetensors`` or a PyTorch file, never unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.weights_path={path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def build_torchvision(
    spec: BackboneSpec, name: str, pretrained: bool, weights_path: str | None
) -> nn.Module:
    """A torchvision model with its ImageNet head, weights from the hub or a local file."""
    if weights_path:
        net = torchvision.models.get_model(spec.builder, weights=None)
        net.load_state_dict(read_state_dict(weights_path))
        log.info("%s: loaded weights from %s", name, weights_path)
        return net
    weights = spec.weights if pretrained else None
    try:
        return torchvision.models.get_model(spec.builder, weights=weights)
    except OSError as error:  # URLError and friends: no internet, no cached weights
        raise RuntimeError(
            f"could not fetch ImageNet weights for {name} ({error}). Without internet, pass "
            "model.weights_path=FILE (a torchvision .pth or .safetensors state dict) or "
            "model.pretrained=false."
        ) from error


def timm_spec(net: nn.Module) -> BackboneSpec:
    """The facts of a timm model, from its ``pretrained_cfg``."""
    cfg = net.pretrained_cfg
    tag = str(cfg.get("tag") or "")
    corpora = {"in1k": "ImageNet-1k", "in22k": "ImageNet-22k", "in12k": "ImageNet-12k"}
    pretrained_on = tuple(name for key, name in corpora.items() if key in tag) or (
        f"as timm's pretrained_cfg states: {cfg.get('hf_hub_id') or tag or 'unknown'}",
    )
    preprocessing = Preprocessing(
        image_size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        crop_ratio=float(cfg.get("crop_pct", 0.875)),
        mean=tuple(cfg.get("mean", Preprocessing.mean)),
        std=tuple(cfg.get("std", Preprocessing.std)),
    )
    head = cfg.get("classifier", "head")
    return BackboneSpec(
        cfg.get("architecture", ""), tag, head, last_conv_block(net), preprocessing, pretrained_on
    )


def build_timm(name: str, pretrained: bool, weights_path: str | None) -> nn.Module:
    """A timm model with its own head, weights from the hub or a local file."""
    import timm

    overlay = {"file": str(weights_path)} if weights_path else None
    try:
        return timm.create_model(
            name, pretrained=pretrained or bool(weights_path), pretrained_cfg_overlay=overlay
        )
    except (OSError, RuntimeError) as error:
        raise RuntimeError(
            f"could not load pretrained weights for timm model {name} ({error}). Without "
            "internet, pass model.weights_path=FILE or model.pretrained=false."
        ) from error


def last_conv_block(net: nn.Module) -> str:
    """Dotted name of the last module holding a Conv2d (Grad-CAM target for timm models)."""
    last = ""
    for module_name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            last = module_name
    return last.rsplit(".", 1)[0] if "." in last else last


def available_backbones() -> list[str]:
    """The paper's backbone names and torchxrayvision's weight names; any timm model name is
    accepted as well."""
    return [*sorted(TORCHVISION_BACKBONES), *XRV_WEIGHTS]


def xrv_backbone(
    name: str, pretrained: bool, weights_path: str | None
) -> tuple[nn.Module, BackboneSpec, WeightsFile | None]:
    """A torchxrayvision backbone, weights from ``weights_path``, its download (read
    weights-only), or none; with the file they were read from."""
    weights = XRV_WEIGHTS[name]
    spec = BackboneSpec(weights.architecture, name, weights.head, weights.target_layer,
                        weights.preprocessing, weights.pretrained_on)  # fmt: skip
    if weights_path:
        source, state = Path(weights_path), read_state_dict(weights_path)
    elif pretrained:
        source = download_weights(name)
        state = read_xrv_file(source)
    else:
        return build_xrv(name, None), spec, None
    return build_xrv(name, state, str(source)), spec, WeightsFile.of(source)


def create_backbone(
    name: str, pretrained: bool = True, weights_path: str | None = None, num_classes: int = 2
) -> Backbone:
    """Build ``name`` with pretrained weights (hub or ``weights_path``) and a new
    ``num_classes`` head."""
    spec, weights_file = TORCHVISION_BACKBONES.get(name), None
    if spec is not None:
        net = build_torchvision(spec, name, pretrained, weights_path)
    elif name in XRV_WEIGHTS:
        net, spec, weights_file = xrv_backbone(name, pretrained, weights_path)
    else:
        import timm

        if not timm.is_model(name):
            raise UnknownBackboneError(
                f"unknown model '{name}'. Choose one of {available_backbones()} (the last "
                "torchxrayvision's, model=xrv) or any timm model name (timm.list_models(), e.g. "
                "efficientnet_b0, convnext_tiny)."
            )
        net = build_timm(name, pretrained, weights_path)
        spec = timm_spec(net)
    replace_layer(net, spec.head, new_head(net.get_submodule(spec.head), num_classes))
    return Backbone(
        net, spec.head, spec.target_layer, spec.preprocessing, spec.pretrained_on, weights_file
    )


def freeze_all_but_head(backbone: Backbone) -> None:
    """Stop gradients everywhere except the classification head (the paper's protocol)."""
    for parameter in backbone.net.parameters():
        parameter.requires_grad_(False)
    for parameter in backbone.net.get_submodule(backbone.head).parameters():
        parameter.requires_grad_(True)
