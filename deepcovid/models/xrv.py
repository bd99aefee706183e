"""torchxrayvision's chest-X-ray-pretrained DenseNet-121 and ResNet-50 as deepcovid backbones.

Its weights are data (:data:`XRV_WEIGHTS`): architecture, input size, and the corpora each set
was trained on. The networks are torchvision's architectures with a 1-channel stem (the same
parameter names as torchxrayvision's models, whose state dicts load unchanged), so their
forward gives logits: none of torchxrayvision's resizing, sigmoid or operating-point
normalisation, whose 18-label head is replaced anyway. Weights come through torchxrayvision's
own download (to ``~/.torchxrayvision``) or from ``model.weights_path`` on offline machines.

The downloaded file is read here, never by torchxrayvision (whose loader unpickles anything):
``torch.load(weights_only=True)`` with, besides tensors, only the classes its DenseNet files
are pickled as allowed (torchxrayvision's DenseNet blocks and the torch layers they hold), and
the tensors are taken from the module's own dictionaries, so none of its code or hooks runs.
"""

from __future__ import annotations

import _compat_pickle
import logging
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

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


REDOWNLOAD = (
    "Delete the file so torchxrayvision downloads it again, or pass model.weights_path=FILE (a "
    "state dict saved with torch.save or as .safetensors)."
)


class UnsafeWeightsError(pickle.UnpicklingError):
    """A torchxrayvision weights file holding anything but tensors and its model's classes."""


def pickled_classes() -> list[type]:
    """The classes torchxrayvision's DenseNet files are pickled as: its own blocks and the torch
    layers they are built from (its ResNet files are plain state dicts)."""
    import torchxrayvision as xrv

    models = xrv.models
    return [models.DenseNet, models._DenseBlock, models._DenseLayer, models._Transition,
            nn.Sequential, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d,
            nn.Linear]  # fmt: skip


def module_tensors(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The parameters and buffers of an unpickled ``module`` by their state-dict names, read
    from its dictionaries (none of its methods or hooks is called)."""
    fields = vars(module)
    state = {
        f"{prefix}{name}": tensor.detach()
        for kind in ("_parameters", "_buffers")
        for name, tensor in fields.get(kind, {}).items()
        if isinstance(tensor, torch.Tensor)
    }
    for name, child in fields.get("_modules", {}).items():
        if isinstance(child, nn.Module):
            state |= module_tensors(child, f"{prefix}{name}.")
    return state


class LegacyUnpickler(pickle._Unpickler):
    """For torch's pre-1.6 format, which stores a pickled model's classes as persistent ids
    that ``weights_only=True`` refuses: resolves only the globals a weights-only load allows
    plus :func:`pickled_classes`, and sets state only on instances of those classes."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> object:
        from torch._weights_only_unpickler import _get_allowed_globals

        module = _compat_pickle.IMPORT_MAPPING.get(module, module)  # protocol 2's __builtin__
        allowed = _get_allowed_globals() | {
            f"{cls.__module__}.{cls.__qualname__}": cls for cls in pickled_classes()
        }
        if f"{module}.{name}" not in allowed:
            raise pickle.UnpicklingError(f"Unsupported GLOBAL {module}.{name}")
        return allowed[f"{module}.{name}"]

    def load_build(self) -> None:
        if type(self.stack[-2]) not in (
            *pickled_classes(),
            OrderedDict,
            torch.Tensor,
            nn.Parameter,
        ):
            raise pickle.UnpicklingError(f"Unsupported BUILD of {type(self.stack[-2])}")
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


LEGACY_PICKLE = ModuleType("deepcovid_legacy_pickle")  # torch.load's pickle_module
LEGACY_PICKLE.Unpickler = LegacyUnpickler
LEGACY_PICKLE.load = lambda file, **kw: LegacyUnpickler(file, **kw).load()


def read_xrv_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a torchxrayvision weights file (a pickled model or a state dict), read
    weights-only (torch's pre-1.6 format through :class:`LegacyUnpickler`); anything else in
    it (a planted payload) is refused naming the file."""
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5
        raise RuntimeError(
            f"{path}: reading torchxrayvision's file weights-only needs torch>=2.5 (this is "
            f"{torch.__version__}); upgrade torch, or pass model.weights_path=FILE (a state dict)"
        )
    try:
        if zipfile.is_zipfile(path):
            with torch.serialization.safe_globals(pickled_classes()):
                loaded = torch.load(path, map_location="cpu", weights_only=True)
        else:
            loaded = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=LEGACY_PICKLE
            )
    except pickle.UnpicklingError as error:
        lines = [line for line in str(error).splitlines() if line.strip()] or [repr(error)]
        detail = next((line for line in lines if "GLOBAL" in line), lines[-1])
        raise UnsafeWeightsError(
            f"{path}: refused, it holds more than torchxrayvision's weights ({detail}). "
            f"Nothing in it was run. {REDOWNLOAD}"
        ) from error
    except (RuntimeError, EOFError) as error:  # torch's words for a cut-short or damaged file
        raise RuntimeError(
            f"{path}: not a readable weights file ({str(error).strip().splitlines()[0]}). "
            f"{REDOWNLOAD}"
        ) from error
    state = module_tensors(loaded) if isinstance(loaded, nn.Module) else loaded
    if not isinstance(state, dict):
        raise UnsafeWeightsError(
            f"{path}: neither a torchxrayvision model nor a state dict. {REDOWNLOAD}"
        )
    return state


def download_weights(name: str) -> Path:
    """``name``'s weights file, downloaded by torchxrayvision to ``~/.torchxrayvision`` unless
    there already; not read (see :func:`read_xrv_file`)."""
    import torchxrayvision as xrv

    try:
        return Path(xrv.models.get_weights(name))
    except Exception as error:  # requests' errors, an unwritable cache: say what to do instead
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
