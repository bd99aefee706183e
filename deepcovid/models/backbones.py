"""Backbone registry: a name → an ImageNet CNN with a 2-class head, frozen as asked.

The paper's four backbones come from torchvision and are described here as data (builder,
weights, head and last conv layer); any other name is looked up in timm's registry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

log = logging.getLogger(__name__)
FINETUNE_MODES = ("head", "full")


@dataclass(frozen=True)
class TorchvisionSpec:
    """How to build one torchvision backbone and where its classifier sits."""

    builder: str  # torchvision.models.get_model name
    weights: str  # weights enum member, e.g. "IMAGENET1K_V1"
    head: str  # dotted path of the classification layer to replace
    target_layer: str  # dotted path of the last conv block (for Grad-CAM)


# The paper's backbones, with the ImageNet weights of its time (torchvision's V1).
TORCHVISION_BACKBONES: dict[str, TorchvisionSpec] = {
    "resnet18": TorchvisionSpec("resnet18", "IMAGENET1K_V1", "fc", "layer4"),
    "resnet50": TorchvisionSpec("resnet50", "IMAGENET1K_V1", "fc", "layer4"),
    "squeezenet": TorchvisionSpec("squeezenet1_0", "IMAGENET1K_V1", "classifier.1", "features"),
    "densenet121": TorchvisionSpec("densenet121", "IMAGENET1K_V1", "classifier", "features"),
}


@dataclass
class Backbone:
    """A built network plus the dotted names of its head and its last conv block."""

    net: nn.Module
    head: str
    target_layer: str


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
    spec: TorchvisionSpec, name: str, pretrained: bool, weights_path: str | None
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


def build_timm(name: str, pretrained: bool, weights_path: str | None) -> tuple[nn.Module, str]:
    """A timm model with its own head, weights from the hub or a local file."""
    import timm

    overlay = {"file": str(weights_path)} if weights_path else None
    try:
        net = timm.create_model(
            name, pretrained=pretrained or bool(weights_path), pretrained_cfg_overlay=overlay
        )
    except (OSError, RuntimeError) as error:
        raise RuntimeError(
            f"could not load pretrained weights for timm model {name} ({error}). Without "
            "internet, pass model.weights_path=FILE or model.pretrained=false."
        ) from error
    return net, net.pretrained_cfg.get("classifier", "head")


def last_conv_block(net: nn.Module) -> str:
    """Dotted name of the last module holding a Conv2d (Grad-CAM target for timm models)."""
    last = ""
    for module_name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            last = module_name
    return last.rsplit(".", 1)[0] if "." in last else last


def available_backbones() -> list[str]:
    """The paper's backbone names; any timm model name is accepted as well."""
    return sorted(TORCHVISION_BACKBONES)


def create_backbone(
    name: str, pretrained: bool = True, weights_path: str | None = None, num_classes: int = 2
) -> Backbone:
    """Build ``name`` with ImageNet weights (hub or ``weights_path``) and a new
    ``num_classes`` head."""
    spec = TORCHVISION_BACKBONES.get(name)
    if spec is not None:
        net = build_torchvision(spec, name, pretrained, weights_path)
        head, target = spec.head, spec.target_layer
    else:
        import timm

        if not timm.is_model(name):
            raise UnknownBackboneError(
                f"unknown model '{name}'. Choose one of {available_backbones()} or any timm "
                "model name (timm.list_models(), e.g. efficientnet_b0, convnext_tiny)."
            )
        net, head = build_timm(name, pretrained, weights_path)
        target = last_conv_block(net)
    replace_layer(net, head, new_head(net.get_submodule(head), num_classes))
    return Backbone(net=net, head=head, target_layer=target)


def freeze_all_but_head(backbone: Backbone) -> None:
    """Stop gradients everywhere except the classification head (the paper's protocol)."""
    for parameter in backbone.net.parameters():
        parameter.requires_grad_(False)
    for parameter in backbone.net.get_submodule(backbone.head).parameters():
        parameter.requires_grad_(True)
