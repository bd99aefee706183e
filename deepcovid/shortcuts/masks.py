"""Lung masks for the audited images, in the model input's pixels.

Each image's mask is, in this order: the manifest's ``lung_mask`` file, ``data.lung_masks/
<stem>.png``, the V7 Labs mask of the same file name, or (``segmenter=true``) the shipped lung
segmenter's. It is fitted to the image and taken through the image's own eval geometry (resize
and centre crop). Masks that are missing, unreadable, empty or of another aspect ratio are
counted with the reason, never used (a mask file found but refused has the origin
:data:`REFUSED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from deepcovid.data.io import load_image
from deepcovid.data.transforms import EvalPreset
from deepcovid.lungs.crop import Box, pixel_box
from deepcovid.lungs.masks import MaskMismatchError
from deepcovid.lungs.provider import LungMaskProvider
from deepcovid.lungs.quality import assess

if TYPE_CHECKING:
    from deepcovid.data.datamodule import XrayDataModule

REFUSED = "refused"  # the origin of a mask file found but not usable (``problem`` says why)


@dataclass(frozen=True)
class MaskSources:
    """Where a mask is looked for beyond the data's own (``audit.masks.*``)."""

    v7: bool = True  # the V7 Labs masks inside torchxrayvision, matched by file name
    segmenter: bool = True  # the shipped lung segmenter for images with no mask


@dataclass(frozen=True)
class AuditMask:
    """A lung mask in model-input pixels (None when there is none, ``problem`` says why), its
    origin, the lungs' share of the model input, and the mask's quality flag."""

    mask: torch.Tensor | None
    origin: str
    area_share: float | None = None
    quality_flag: str = ""
    problem: str | None = None


class AuditMasks:
    """Finds, fits and transforms the lung mask of each audited image."""

    def __init__(
        self,
        preset: EvalPreset,
        mask_dir: str | Path | None = None,
        sources: MaskSources = MaskSources(),
        device: str = "cpu",
        boxes: dict[str, Box] | None = None,
    ) -> None:
        self.preset = preset
        self.boxes = boxes or {}  # lung boxes of a lung-cropped model's input
        self.provider = LungMaskProvider(mask_dir, use_v7=sources.v7, device=device)
        self.segmenter = sources.segmenter

    @classmethod
    def of(cls, datamodule: XrayDataModule, sources: MaskSources, device: str) -> AuditMasks:
        """The masks of ``datamodule``'s images (its mask folder, its eval geometry, its lung
        crop boxes), the segmenter on ``device``."""
        return cls(
            datamodule.eval_transform, datamodule.lung_masks, sources, device, datamodule.boxes
        )

    def find(self, path: str, given: str | None = None) -> tuple[np.ndarray, str] | None:
        """The mask at the image's resolution and its origin, or None when none is known."""
        image = load_image(path)
        if self.segmenter:
            found = self.provider.mask_for(path, image, given)
            return found.mask, found.origin
        known = self.provider.known_mask(Path(path), image.size, given)
        return known

    def __call__(self, path: str, given: str | None = None) -> AuditMask:
        try:
            found = self.find(path, given)
        except (MaskMismatchError, ValueError, OSError) as error:
            return AuditMask(None, REFUSED, problem=str(error))
        if found is None:
            return AuditMask(None, "none", problem="no mask given or known, segmenter off")
        mask, origin = found
        if not mask.any():
            return AuditMask(None, origin, problem=f"the {origin} mask is empty")
        # judged on the whole image, as its limits were set, before any lung crop
        flag = assess(mask, limits=self.provider.limits).quality_flag
        if path in self.boxes:  # the model sees the lung-cropped image: so does its mask
            left, top, right, bottom = pixel_box(self.boxes[path], mask.shape[1], mask.shape[0])
            mask = mask[top:bottom, left:right]
        fitted = self.preset.mask(mask)
        return AuditMask(fitted, origin, float(fitted.float().mean()), flag)
