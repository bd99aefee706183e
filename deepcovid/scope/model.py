"""A small convnet that tells frontal chest radiographs from lateral views, CT images and
non-radiographs, and the image → tensor step it needs.

The network sees one grayscale channel at a fixed square working size (stretched, as the lung
segmenter's input), standardised per image (:func:`deepcovid.utils.small_nets.standardise`), and
returns one logit per class of :data:`CLASSES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from PIL import Image
from torch import nn

from deepcovid.utils.small_nets import conv_block, standardise, to_working_pixels

WORKING_SIZE = 64  # pixels, square; the shipped weights were trained at this size
CLASSES = ("frontal", "lateral", "ct", "other")  # index = logit; only frontal is in scope
IN_SCOPE = CLASSES.index("frontal")
CLASS_WORDS = {
    "frontal": "frontal chest radiograph",
    "lateral": "lateral view",
    "ct": "CT image",
    "other": "not a radiograph",
}


@dataclass(frozen=True)
class ScopeShape:
    """Widths of :class:`ScopeNet`'s stages (stored beside the weights)."""

    widths: tuple[int, ...] = (8, 16, 32, 64)
    dropout: float = 0.2

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "widths": list(self.widths)}


class ScopeNet(nn.Module):
    """Stages of :func:`deepcovid.utils.small_nets.conv_block`, each followed by a 2× max pool, then
    global average pooling and a linear layer: ``(N, 1, S, S)`` images to ``(N, len(CLASSES))``
    logits."""

    def __init__(self, shape: ScopeShape = ScopeShape()) -> None:
        super().__init__()
        self.shape = shape
        layers: list[nn.Module] = []
        channels = 1
        for width in shape.widths:
            layers += [*conv_block(channels, width), nn.MaxPool2d(2)]  # flat: the shipped keys
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(shape.dropout),
            nn.Linear(channels, len(CLASSES)),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def model_input(image: Image.Image, size: int = WORKING_SIZE) -> torch.Tensor:
    """The ``(1, size, size)`` network input for an image from ``deepcovid.data.io``."""
    return torch.from_numpy(standardise(to_working_pixels(image, size)))[None]
