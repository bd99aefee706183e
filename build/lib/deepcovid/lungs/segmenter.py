"""Segment the lungs of chest X-rays with the shipped (or any trained) U-Net.

    segmenter = load_segmenter()                     # the weights inside deepcovid
    result = segmenter.segment(load_image(path))     # bool mask at the image's resolution

The probability map is resized (bilinear) from the working size to the image's own size and
thresholded there, so mask edges follow the image's resolution rather than the working
grid's; then the two largest regions are kept and their holes filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from deepcovid.lungs.model import LungUNet, model_input
from deepcovid.lungs.postprocess import clean_mask
from deepcovid.lungs.quality import DEFAULT_LIMITS, MaskQuality, QualityLimits, assess
from deepcovid.lungs.weights import SHIPPED_WEIGHTS, load_network


@dataclass(frozen=True)
class Segmentation:
    """A cleaned lung mask at the image's resolution and its quality."""

    mask: np.ndarray
    quality: MaskQuality


class LungSegmenter:
    """A trained :class:`LungUNet` with its working size, threshold and quality limits."""

    def __init__(
        self,
        network: LungUNet,
        working_size: int,
        threshold: float = 0.5,
        limits: QualityLimits = DEFAULT_LIMITS,
    ) -> None:
        self.network = network.eval()
        self.working_size = working_size
        self.threshold = threshold
        self.limits = limits

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @torch.inference_mode()
    def probabilities(self, images: Sequence[Image.Image]) -> list[torch.Tensor]:
        """Lung probability per pixel, ``(height, width)`` float tensors at each image's size."""
        batch = torch.stack([model_input(image, self.working_size) for image in images])
        probs = torch.sigmoid(self.network(batch.to(self.device)).float())
        return [
            F.interpolate(p[None], size=(image.height, image.width), mode="bilinear")[0, 0].cpu()
            for p, image in zip(probs, images, strict=True)
        ]

    def segment_batch(self, images: Sequence[Image.Image]) -> list[Segmentation]:
        """:meth:`segment` for several images in one forward pass."""
        results = []
        for prob in self.probabilities(images):
            raw = (prob >= self.threshold).numpy()
            mask = clean_mask(raw)
            results.append(Segmentation(mask, assess(mask, raw, self.limits)))
        return results

    def segment(self, image: Image.Image) -> Segmentation:
        """The lung mask of an 8-bit grayscale image (``deepcovid.data.io.load_image``)."""
        return self.segment_batch([image])[0]


def load_segmenter(
    weights: str | Path = SHIPPED_WEIGHTS,
    device: str | torch.device = "cpu",
    limits: QualityLimits = DEFAULT_LIMITS,
) -> LungSegmenter:
    """A :class:`LungSegmenter` with verified ``weights`` (default: the shipped ones)."""
    network, card = load_network(weights)
    return LungSegmenter(network.to(device), card.working_size, card.threshold, limits)
