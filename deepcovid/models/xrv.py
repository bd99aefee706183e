"""torchxrayvision's chest-X-ray-pretrained DenseNet-121 and ResNet-50 as deepcovid backbones.

Its weights are data (:data:`XRV_WEIGHTS`): architecture, input size, and the corpora each set
was trained on. The networks are torchvision's architectures with a 1-channel stem (the same
parameter names as torchxrayvision's models, whose state dicts load unchanged), so their
forward gives logits: none of torchxrayvision's resizing, sigmoid or operating-point
normalisation, whose 18-label head is replaced anyway. Weights come through torchxrayvision's
own download (to ``~/.torchxrayvision``) or from ``model.weights_path`` on offline machines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from deepcovid.data.transforms import Preprocessing

log = logging.getLogger(__name__)
XRV_LABELS = 18  # torchxrayvision's pathology outputs, the head the weights come with
XRV_SCALE = 2048  # pixels scaled to [-1024, 1024]: (x / 255 − 0.5) · 2048
ALL = ("NIH ChestX-ray14", "PadChest", "CheXpert", "MIMIC-CXR", "Google (NIH relabelled)",
       "OpenI", "RSNA Pneumonia (Kaggle)")  # fmt: skip


@dataclass(frozen=True)
class XrvWeights:
    """One torchxrayvision weight set: its architecture, input size and training corpora."""

    architecture: str  # densenet121 | resnet50
    input_size: int
    pretrained_on: tuple[str, ...]

    @property
    def stem(self) -> str:
        return "features.conv0" if self.architecture == "densenet121" else "conv1"

    @property
    def head(self) -> str:
        return "classifier" if self.architecture == "densenet121" else "fc"

    @property
    def target_layer(self) -> str:
        return "features" if self.architecture == "densenet121" else "layer4"

    @property
    def preprocessing(self) -> Preprocessing:
        """One channel, [-1024, 1024], its input size, the centre square (crop ratio 1)."""
        return Preprocessing(self.input_size, 1.0, (0.5,), (1.0 / XRV_SCALE,), channels=1)


XRV_WEIGHTS: dict[str, XrvWeights] = {
    "densenet121-res224-all": XrvWeights("densenet121", 224, ALL),
    "densenet121-res224-nih": XrvWeights("densenet121", 224, ("NIH ChestX-ray14",)),
    "densenet121-res224-pc": XrvWeights("densenet121", 224, ("PadChest",)),
    "densenet121-res224-chex": XrvWeights("densenet121", 224, ("CheXpert",)),
    "densenet121-res224-rsna": XrvWeights("densenet121", 224, ("RSNA Pneumonia (Kaggle)",)),
    "densenet121-res224-mimic_nb": XrvWeights("densenet121", 224, ("MIMIC-CXR",)),
    "densenet121-res224-mimic_ch": XrvWeights("densenet121", 224, ("MIMIC-CXR",)),
    "resnet50-res512-all": XrvWeights(
        "resnet50",
        512,
        (
            "PadChest",
            "NIH ChestX-ray14",
            "RSNA Pneumonia (Kaggle)",
            "SIIM-ACR Pneumothorax",
            "VinDr-CXR",
        ),
    ),  # fmt: skip
}


def xrv_network(weights: XrvWeights) -> nn.Module:
    """The architecture of ``weights`` with a 1-channel stem and the 18-label head."""
    net = torchvision.models.get_model(weights.architecture, weights=None, num_classes=XRV_LABELS)
    parent, _, name = weights.stem.rpartition(".")
    setattr(
        net.get_submodule(parent) if parent else net, name, nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    )
    return net


def as_network_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchxrayvision state dict as :func:`xrv_network` names it: its ResNet wrapper's
    ``model.`` prefix dropped, its operating-point buffer left out (the head is replaced)."""
    return {key.removeprefix("model."): value for key, value in state.items()
            if key != "op_threshs"}  # fmt: skip


def download_state(name: str) -> dict[str, torch.Tensor]:
    """``name``'s weights through torchxrayvision (downloaded once to ``~/.torchxrayvision``)."""
    import torchxrayvision as xrv

    try:
        return xrv.models.get_model(name).state_dict()
    except Exception as error:  # requests' errors, an unreadable file: say what to do instead
        raise RuntimeError(
            f"could not fetch torchxrayvision weights {name} ({error}). Without internet, save "
            "a torchxrayvision model's state_dict() with torch.save (or as .safetensors) where "
            "it can reach and pass model.weights_path=FILE, or model.pretrained=false."
        ) from error


def build_xrv(name: str, state: dict[str, torch.Tensor] | None, where: str = "") -> nn.Module:
    """The torchxrayvision backbone ``name`` with the weights ``state`` (read from ``where``),
    or random ones."""
    weights = XRV_WEIGHTS[name]
    net = xrv_network(weights)
    if state is None:
        return net
    try:
        net.load_state_dict(as_network_state(state))
    except RuntimeError as error:
        raise ValueError(
            f"{where}: not the weights of torchxrayvision's {name} ({weights.architecture}, 1 "
            f"channel, {XRV_LABELS} labels): {str(error).splitlines()[0]} Save "
            f"`xrv.models.get_model('{name}').state_dict()` instead."
        ) from error
    log.info("%s: torchxrayvision weights from %s", name, where)
    return net
