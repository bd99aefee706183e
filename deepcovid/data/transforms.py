"""Train and eval transform presets: grayscale image → normalised 3-channel tensor.

As in torchvision's reference scripts, one object per mode built from a few named arguments.
Defaults follow the Deep-COVID code: RandomResizedCrop + horizontal flip + small rotation for
training; resize to 256/224 of the input size then center crop for evaluation.

Each preset is two steps: ``geometry`` (PIL "L" image or uint8 (1, H, W) tensor → uint8
(1, S, S) tensor; cheap on the small images of :mod:`deepcovid.data.cache`) and ``finish``
(uint8 → normalised float, 3 channels; works on a single image or a batch, so it can run on
the GPU after transfer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class GrayToRGB(torch.nn.Module):
    """Repeat a 1-channel image (or batch) to the 3 channels ImageNet backbones expect."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-3] != 1:
            return image
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:])


def finishing(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """The step every preset ends with: float in [0, 1], 3 channels, normalised."""
    return v2.Compose(
        [
            v2.ToDtype(torch.float32, scale=True),
            GrayToRGB(),
            v2.Normalize(mean=list(mean), std=list(std)),
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
        image_size: int = 224,
        crop_scale: Sequence[float] = (0.8, 1.0),
        hflip_prob: float = 0.5,
        rotation_degrees: float = 10.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        steps: list[torch.nn.Module] = [
            v2.PILToTensor(),
            v2.RandomResizedCrop(image_size, scale=tuple(crop_scale), antialias=True),
        ]
        if hflip_prob > 0:
            steps.append(v2.RandomHorizontalFlip(hflip_prob))
        if rotation_degrees > 0:
            steps.append(v2.RandomRotation(rotation_degrees))
        self.geometry = v2.Compose(steps)
        self.finish = finishing(mean, std)


class EvalPreset(Preset):
    """Evaluation: resize the short side to ``image_size / crop_ratio``, center crop."""

    def __init__(
        self,
        image_size: int = 224,
        crop_ratio: float = 224 / 256,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        resize = round(image_size / crop_ratio)
        self.geometry = v2.Compose(
            [v2.PILToTensor(), v2.Resize(resize, antialias=True), v2.CenterCrop(image_size)]
        )
        self.finish = finishing(mean, std)
