"""What a model expects of its input (:class:`Preprocessing`) and the train and eval transform
presets that produce it: 8-bit grayscale image → normalised float tensor (C, S, S).

A model's preprocessing is data: its backbone brings the defaults (ImageNet mean/std and three
channels for the torchvision and timm backbones, one channel scaled to [-1024, 1024] for the
torchxrayvision ones), the run may change the input size and crop, and the checkpoint stores the
result, so every command that reads the model prepares images the same way.

As in torchvision's reference scripts, each preset is one object built from a few named
arguments, in two steps: ``geometry`` (PIL "L" image or uint8 (1, H, W) tensor → uint8
(1, S, S) tensor; cheap on the small images of :mod:`deepcovid.data.cache`) and ``finish``
(uint8 → normalised float with the model's channels; works on a single image or a batch, so it
can run on the GPU after the transfer).

Defaults differ from the authors' published script (see experiments/README.md): training uses
RandomResizedCrop at scale (0.8, 1), a horizontal flip and ±10° rotation; ``experiment=
deepcovid_code`` reproduces their transforms.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP_RATIO = 224 / 256  # resize 256, centre crop 224: torchvision's evaluation preset
STEPS = (
    "load_image (8-bit grayscale); resize the short side to image_size / crop_ratio "
    "(antialiased); centre crop image_size x image_size; scale to [0, 1]; subtract mean and "
    "divide by std per channel, the gray image repeated to `channels` channels"
)


# Whose lung masks give the crop box: the shipped segmenter for every image (the crop then
# cannot depend on which images come with masks), or any (a given mask, else V7 Labs', else
# the segmenter's).
LUNG_CROP_MASKS = ("segmenter", "any")
OUTSIDE_LUNGS = ("keep", "blank")


@dataclass(frozen=True)
class Preprocessing:
    """How a model's input is made from an 8-bit grayscale radiograph (see :data:`STEPS`)."""

    image_size: int = 224
    crop_ratio: float = DEFAULT_CROP_RATIO
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channels: int = 3
    lung_crop: bool = False  # first crop to the lungs' box (deepcovid.lungs.crop)
    lung_margin: float = 0.05  # the box widened by this share of its size on each side
    lung_crop_masks: str = "segmenter"  # whose masks give the box (deepcovid.lungs.crop)
    outside_lungs: str = "keep"  # keep | blank: pixels outside the lung mask set to black first

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", int(self.image_size))
        object.__setattr__(self, "crop_ratio", float(self.crop_ratio))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.image_size < 1 or not 0.0 < self.crop_ratio <= 1.0:
            raise ValueError(
                f"image_size={self.image_size}, crop_ratio={self.crop_ratio}: need a positive "
                "size and 0 < crop_ratio ≤ 1"
            )
        if self.outside_lungs not in OUTSIDE_LUNGS:
            raise ValueError(
                f"outside_lungs={self.outside_lungs!r}; choose one of {list(OUTSIDE_LUNGS)}"
            )
        if self.lung_crop_masks not in LUNG_CROP_MASKS:
            raise ValueError(
                f"lung_crop_masks={self.lung_crop_masks!r}; choose one of {list(LUNG_CROP_MASKS)}"
            )
        if len(self.mean) not in (1, self.channels) or len(self.std) != len(self.mean):
            raise ValueError(
                f"mean {self.mean} / std {self.std} do not fit {self.channels} channel(s)"
            )

    def replace(self, **changes: Any) -> Preprocessing:
        """A copy with the given fields changed; None values keep the current one."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def steps(self) -> str:
        """:data:`STEPS`, with the lung step after loading when the input is cut to the lungs."""
        if not self.uses_lung_masks:
            return STEPS
        cut = [
            *(["pixels outside the lung mask set to 0"] if self.outside_lungs == "blank" else []),
            *(
                [f"cropped to the lungs' box widened by {self.lung_margin:g} of its size"]
                if self.lung_crop
                else []
            ),
        ]
        load, rest = STEPS.split("; ", 1)
        return (
            f"{load}; {'; '.join(cut)} (masks: {self.lung_crop_masks}, deepcovid.lungs.crop); "
            f"{rest}"
        )

    @property
    def uses_lung_masks(self) -> bool:
        """Whether the input is cut to the lungs (cropped to their box or blanked outside)."""
        return self.lung_crop or self.outside_lungs == "blank"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields})


class ToChannels(torch.nn.Module):
    """Repeat a 1-channel image (or batch) to ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-3] == self.channels:
            return image
        return image.expand(*image.shape[:-3], self.channels, *image.shape[-2:])


def finishing(preprocessing: Preprocessing) -> v2.Compose:
    """The step every preset ends with: float in [0, 1], the model's channels, normalised."""
    return v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            ToChannels(preprocessing.channels),
            v2.Normalize(mean=list(preprocessing.mean), std=list(preprocessing.std)),
        ]
    )


class Preset:
    """``geometry`` then ``finish``; subclasses build both."""

    geometry: v2.Compose
    finish: v2.Compose

    def __call__(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        return self.finish(self.geometry(image))


class TrainPreset(Preset):
    """Training augmentation: random resized crop, horizontal flip, small rotation."""

    def __init__(
        self,
        preprocessing: Preprocessing,
        crop_scale: Sequence[float] = (0.8, 1.0),
        hflip_prob: float = 0.5,
        rotation_degrees: float = 10.0,
    ) -> None:
        steps: list[torch.nn.Module] = [
            v2.PILToTensor(),
            v2.RandomResizedCrop(preprocessing.image_size, scale=tuple(crop_scale), antialias=True),
        ]
        if hflip_prob > 0:
            steps.append(v2.RandomHorizontalFlip(hflip_prob))
        if rotation_degrees > 0:
            steps.append(v2.RandomRotation(rotation_degrees))
        self.geometry = v2.Compose(steps)
        self.finish = finishing(preprocessing)


class EvalPreset(Preset):
    """Evaluation: resize the short side to ``image_size / crop_ratio``, centre crop.

    :meth:`mask` takes a mask (e.g. of the lungs) at the image's resolution through the same
    geometry (nearest neighbour), so mask, model input and heatmap share their pixels.
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        size = preprocessing.image_size
        resize = round(size / preprocessing.crop_ratio)
        self.preprocessing = preprocessing
        self.geometry = v2.Compose(
            [v2.PILToTensor(), v2.Resize(resize, antialias=True), v2.CenterCrop(size)]
        )
        self.mask_geometry = v2.Compose(
            [
                v2.Resize(resize, interpolation=v2.InterpolationMode.NEAREST_EXACT),
                v2.CenterCrop(size),
            ]
        )
        self.finish = finishing(preprocessing)

    def mask(self, mask: np.ndarray) -> torch.Tensor:
        """A bool ``(H, W)`` mask of the image as a bool ``(S, S)`` mask of the model input."""
        pixels = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))[None]
        return self.mask_geometry(pixels)[0].bool()
