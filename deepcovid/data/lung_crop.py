"""Lung-cropped input (``data.lung_crop=true``): each image cropped to its lungs' bounding box,
widened by a margin, before the transforms. The standard control for shortcut learning outside
the lungs: a marker or a label there is cut away.

The box of every image is found once and kept, as fractions of the image's width and
height, in ``lung-boxes.json`` in the cache folder, keyed by the file's path and sha256: later
runs read it, and the fractions crop the full-resolution image and its cached pixels alike.
The model's record says it was trained on cropped input, so evaluate, predict and the audit
crop the same way.

Whose masks give the box (``data.lung_crop_masks``): ``segmenter`` (the default) segments every
image with the shipped segmenter; ``any`` takes an image's given mask (manifest ``lung_mask``,
``data.lung_masks/<stem>.png``), else its V7 Labs mask, else the segmenter's. Where masks come
with one class only (in cxr-dev only COVID images have V7 masks), ``any`` makes the crop itself
differ by class, a shortcut of its own: a model trained on a planted-marker copy with it still
reached a test AUROC of 0.89 (experiments/README.md).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepcovid.data.io import load_image
from deepcovid.data.masks import lung_box, v7_available
from deepcovid.lungs.provider import LungMaskProvider
from deepcovid.utils.files import write_text_atomic

log = logging.getLogger(__name__)
Box = tuple[float, float, float, float]  # left, top, right, bottom, as fractions
FORMAT_VERSION = 1


def box_of(mask: np.ndarray, margin: float) -> Box:
    """The lung box of a mask as fractions of its width and height."""
    left, top, right, bottom = lung_box(mask, margin)
    height, width = mask.shape
    return left / width, top / height, right / width, bottom / height


def pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The box in pixels of an image of ``width × height`` (never empty)."""
    left, top = int(box[0] * width), int(box[1] * height)
    right = max(left + 1, round(box[2] * width))
    bottom = max(top + 1, round(box[3] * height))
    return left, top, right, bottom


def crop(image: Image.Image | torch.Tensor, box: Box) -> Image.Image | torch.Tensor:
    """A PIL image or a ``(C, H, W)`` tensor cropped to ``box``."""
    if isinstance(image, Image.Image):
        return image.crop(pixel_box(box, image.width, image.height))
    left, top, right, bottom = pixel_box(box, image.shape[-1], image.shape[-2])
    return image[..., top:bottom, left:right]


class CroppedLoader:
    """A path loader (the files or the cache) whose images come cropped to their lung box."""

    def __init__(self, load: Callable[[str], Image.Image | torch.Tensor], boxes: dict[str, Box]):
        self.load, self.boxes = load, boxes

    def __call__(self, path: str) -> Image.Image | torch.Tensor:
        return crop(self.load(path), self.boxes[path])


def crop_mask_provider(masks: str, mask_dir: str | Path | None = None) -> LungMaskProvider:
    """The masks the crop box comes from: the segmenter's for every image, or any."""
    if masks == "segmenter":
        return LungMaskProvider(None, use_v7=False)
    return LungMaskProvider(mask_dir, use_v7=v7_available())


class LungBoxes:
    """Lung boxes of image files, found once and kept in ``directory/lung-boxes.json``."""

    def __init__(self, directory: str | Path, margin: float = 0.05, masks: str = "segmenter"):
        self.path = Path(directory) / "lung-boxes.json"
        self.margin, self.masks = margin, masks

    def read(self) -> dict[str, dict]:
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        if (stored.get("version"), stored.get("margin"), stored.get("masks")) != (
            FORMAT_VERSION, self.margin, self.masks
        ):  # fmt: skip
            return {}
        return stored["boxes"]

    def boxes(
        self,
        paths: Sequence[str],
        sha256: Sequence[str],
        masks: Sequence[str | None],
        find: Callable[[str, str | None], np.ndarray],
    ) -> dict[str, Box]:
        """The box of each path; ``find(path, given_mask)`` gives the lung mask of the images
        whose box is not kept yet (or whose content changed)."""
        kept = self.read()
        found: dict[str, Box] = {}
        missing = 0
        for path, digest, given in zip(paths, sha256, masks, strict=True):
            key = os.path.abspath(path)
            entry = kept.get(key)
            if entry is None or entry["sha256"] != digest:
                mask = find(path, given)
                if not mask.any():
                    raise ValueError(
                        f"{path}: its lung mask is empty, so data.lung_crop cannot crop it; "
                        "give a mask (manifest lung_mask column or data.lung_masks) or leave "
                        "the file out"
                    )
                entry = {"sha256": digest, "box": box_of(mask, self.margin)}
                kept[key] = entry
                missing += 1
            found[path] = tuple(entry["box"])
        if missing:
            log.info("found the lung box of %d image(s); kept in %s", missing, self.path)
            stored = {"version": FORMAT_VERSION, "margin": self.margin, "masks": self.masks,
                      "boxes": kept}  # fmt: skip
            write_text_atomic(json.dumps(stored), self.path)
        return found


class LungCropReader:
    """Reads an image file cropped to its lungs' box, finding the mask on the fly (for new
    images in ``predict``: nothing is kept)."""

    def __init__(self, margin: float = 0.05, masks: str = "segmenter") -> None:
        self.margin = margin
        self.provider = crop_mask_provider(masks)

    def __call__(self, path: str | Path) -> Image.Image:
        image = load_image(path)
        mask = self.provider.mask_for(path, image).mask
        if not mask.any():
            raise ValueError(f"{path}: its lung mask is empty, so the lung crop is undefined")
        return crop(image, box_of(mask, self.margin))
