"""One call for an image's lung mask, whatever is known about it (the lung crop built on it
is :mod:`deepcovid.lungs.crop`).

    provider = LungMaskProvider(mask_dir=None, use_v7=True)
    found = provider.mask_for("x.png")             # LungMask: mask, origin, quality

Order of preference: a ``given_mask`` file → ``mask_dir/<stem>.png`` → the V7 Labs mask of the
same file name → the shipped segmenter (loaded on first use). Every mask is fitted to the
image (``deepcovid.lungs.masks.fit_mask``: nearest resize, refused when the aspect ratio
differs) and comes with its origin and quality flags, so a caller can count or drop them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from deepcovid.data.io import load_image
from deepcovid.lungs.masks import (
    V7LungMasks,
    fit_mask,
    folder_mask_path,
    read_mask_file,
)
from deepcovid.lungs.quality import DEFAULT_LIMITS, MaskQuality, QualityLimits, assess
from deepcovid.lungs.segmenter import LungSegmenter, load_segmenter
from deepcovid.lungs.weights import SHIPPED_WEIGHTS

Origin = Literal["given", "folder", "v7", "segmenter"]


@dataclass(frozen=True)
class LungMask:
    """A bool lung mask at the image's resolution, where it came from, and its quality."""

    mask: np.ndarray
    origin: Origin
    quality: MaskQuality


class LungMaskProvider:
    """Finds the lung mask of chest X-ray files (see the module docstring for the order).

    ``use_v7=True`` reads ``v7_zip``, by default the zip inside the installed torchxrayvision
    (an error says how to install it); pass ``False`` to go straight from given masks to the
    segmenter. ``weights`` default to the shipped ones.
    """

    def __init__(
        self,
        mask_dir: str | Path | None = None,
        use_v7: bool = True,
        v7_zip: str | Path | None = None,
        weights: str | Path = SHIPPED_WEIGHTS,
        device: str = "cpu",
        limits: QualityLimits = DEFAULT_LIMITS,
    ) -> None:
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        self.v7 = V7LungMasks(v7_zip) if use_v7 else None
        self.weights, self.device, self.limits = Path(weights), device, limits

    @cached_property
    def segmenter(self) -> LungSegmenter:
        """The segmenter, loaded (and its weights verified) on first use."""
        return load_segmenter(self.weights, self.device, self.limits)

    def known_mask(
        self, image_path: Path, size: tuple[int, int], given_mask: str | Path | None
    ) -> tuple[np.ndarray, Origin] | None:
        """The first mask found on disk or in V7, fitted to ``size``; None when none is."""
        if given_mask is not None:
            return fit_mask(read_mask_file(given_mask), size, str(given_mask)), "given"
        in_folder = folder_mask_path(self.mask_dir, image_path) if self.mask_dir else None
        if in_folder is not None:
            return fit_mask(read_mask_file(in_folder), size, str(in_folder)), "folder"
        if self.v7 is not None:
            mask = self.v7.mask_for(image_path, size)
            if mask is not None:
                return mask, "v7"
        return None

    def mask_for(
        self,
        image_path: str | Path,
        image: Image.Image | None = None,
        given_mask: str | Path | None = None,
    ) -> LungMask:
        """The lung mask of ``image_path`` (``image``: the already loaded image, to skip
        reading it again); ``given_mask`` is a mask file that takes precedence."""
        image_path = Path(image_path)
        image = load_image(image_path) if image is None else image
        known = self.known_mask(image_path, image.size, given_mask)
        if known is not None:
            mask, origin = known
            return LungMask(mask, origin, assess(mask, limits=self.limits))
        result = self.segmenter.segment(image)
        return LungMask(result.mask, "segmenter", result.quality)
