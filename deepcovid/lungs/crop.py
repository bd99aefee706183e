"""Lung-restricted input: each image cropped to its lungs' bounding box widened by a margin
(``data.lung_crop=true``), and/or every pixel outside its lung mask set to black
(``data.outside_lungs=blank``), before the transforms. The standard controls for shortcut
learning outside the lungs: a marker or a label there is cut away or blanked. On cxr-dev the
box alone keeps most of the image (median box from 3 % to 97 % of the width and 5 % to 89 % of
the height: many images are tight crops of figures), so a marker in a corner mostly survives
it; blanking removes what is not lung (experiments/README.md).

The mask of every image is found once and kept in the cache folder: its box, as fractions of
the image's width and height, in ``lung-boxes.json`` keyed by the file's path and checked
against its sha256 and the mask's origin (:func:`mask_origin`: a given mask file's path, size
and mtime, or which provider), and the mask itself (at most 512 px on its longer side) in
``lung-masks/<masks>/<sha256>-<origin digest>.png``; later runs read them. Both apply to the
full-resolution file (never to the shrunk pixels of ``data.cache``, whose crop would be
enlarged again). The model's record says what its input was, so evaluate, predict and the
audit do the same.

Whose masks (``data.lung_crop_masks``): ``segmenter`` (the default) segments every image with
the shipped segmenter, so the input cannot depend on which images come with masks (in cxr-dev
only COVID images have V7 masks); ``any`` takes an image's given mask (manifest ``lung_mask``,
``data.lung_masks/<stem>.png``), else its V7 Labs mask, else the segmenter's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepcovid.data.io import load_image
from deepcovid.lungs.masks import folder_mask_path, lung_box, v7_available
from deepcovid.lungs.provider import LungMaskProvider
from deepcovid.utils.files import atomic_path, write_text_atomic

log = logging.getLogger(__name__)
Box = tuple[float, float, float, float]  # left, top, right, bottom, as fractions
FORMAT_VERSION = 3
MASK_SIDE = 512  # a kept mask's longer side at most, in pixels (resized to each image on use)


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


def blank_outside(
    image: Image.Image | torch.Tensor, mask: Image.Image
) -> Image.Image | torch.Tensor:
    """A PIL image or a ``(C, H, W)`` uint8 tensor with the pixels outside ``mask`` (an "L"
    image, any size: resized to the image, nearest) set to 0."""
    if isinstance(image, Image.Image):
        lungs = mask.resize(image.size, Image.Resampling.NEAREST).point(lambda v: 255 * (v > 0))
        return Image.composite(image, Image.new(image.mode, image.size, 0), lungs.convert("1"))
    size = (image.shape[-1], image.shape[-2])
    lungs = torch.from_numpy(np.asarray(mask.resize(size, Image.Resampling.NEAREST)) > 0)
    return image * lungs.to(image.dtype)


def keep_mask(mask: np.ndarray, path: Path) -> None:
    """Store ``mask`` as a PNG at most :data:`MASK_SIDE` pixels on its longer side."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    scale = MASK_SIDE / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        image.save(partial, format="PNG")


class LungLoader:
    """A path loader (the files or the cache) whose images come blanked outside their kept
    lung mask (``masks``: path → mask file) and/or cropped to their lung box (``boxes``)."""

    def __init__(
        self,
        load: Callable[[str], Image.Image | torch.Tensor],
        boxes: dict[str, Box] | None = None,
        masks: dict[str, Path] | None = None,
    ) -> None:
        self.load, self.boxes, self.masks = load, boxes, masks

    def __call__(self, path: str) -> Image.Image | torch.Tensor:
        image = self.load(path)
        if self.masks is not None:
            with Image.open(self.masks[path]) as mask:
                image = blank_outside(image, mask.convert("L"))
        return image if self.boxes is None else crop(image, self.boxes[path])


def crop_mask_provider(masks: str, mask_dir: str | Path | None = None) -> LungMaskProvider:
    """The masks the crop box comes from: the segmenter's for every image, or any."""
    if masks == "segmenter":
        return LungMaskProvider(None, use_v7=False)
    return LungMaskProvider(mask_dir, use_v7=v7_available())


def mask_origin(
    path: str, given: str | None, masks: str, mask_dir: str | Path | None = None
) -> str:
    """What the mask of ``path`` will come from, as a key that changes when the mask would:
    the given or folder mask file (path, size, mtime), else whether V7 Labs masks are at hand
    (by file name; the segmenter's otherwise), or the segmenter for every image."""
    if masks == "segmenter":
        return "segmenter"
    source = given or (folder_mask_path(mask_dir, path) if mask_dir is not None else None)
    if source is None:
        return f"v7-or-segmenter:{v7_available()}"
    stat = os.stat(source)
    return f"file:{os.path.abspath(source)}:{stat.st_size}:{stat.st_mtime_ns}"


class LungBoxes:
    """Lung boxes and masks of image files, found once and kept in ``directory``
    (``lung-boxes.json``, ``lung-masks/``)."""

    def __init__(self, directory: str | Path, margin: float = 0.05, masks: str = "segmenter"):
        self.path = Path(directory) / "lung-boxes.json"
        self.mask_dir = Path(directory) / "lung-masks" / masks
        self.margin, self.masks = margin, masks

    def mask_file(self, sha256: str, origin: str) -> Path:
        """Where the kept mask of the file with this sha256, from ``origin``, lies."""
        return self.mask_dir / f"{sha256}-{hashlib.sha256(origin.encode()).hexdigest()[:16]}.png"

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
        origins: Sequence[str],
        find: Callable[[str, str | None], np.ndarray],
    ) -> dict[str, Box]:
        """The box of each path (its mask kept in :meth:`mask_file`); ``find(path,
        given_mask)`` gives the lung mask of the images not kept yet, or whose content or
        mask origin (:func:`mask_origin`) changed."""
        kept = self.read()
        found: dict[str, Box] = {}
        missing = 0
        for path, digest, given, origin in zip(paths, sha256, masks, origins, strict=True):
            key = os.path.abspath(path)
            entry = kept.get(key)
            if (
                entry is None
                or (entry["sha256"], entry["origin"]) != (digest, origin)
                or not self.mask_file(digest, origin).is_file()
            ):
                mask = find(path, given)
                if not mask.any():
                    raise ValueError(
                        f"{path}: its lung mask is empty, so its lungs cannot be cut out; "
                        "give a mask (manifest lung_mask column or data.lung_masks) or leave "
                        "the file out"
                    )
                keep_mask(mask, self.mask_file(digest, origin))
                entry = {"sha256": digest, "origin": origin, "box": box_of(mask, self.margin)}
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
    """Reads an image file blanked outside its lungs and/or cropped to their box, finding the
    mask on the fly (for new images in ``predict``: nothing is kept)."""

    def __init__(
        self,
        margin: float = 0.05,
        masks: str = "segmenter",
        to_box: bool = True,
        blank: bool = False,
    ) -> None:
        self.margin, self.to_box, self.blank = margin, to_box, blank
        self.provider = crop_mask_provider(masks)

    def __call__(self, path: str | Path) -> Image.Image:
        image = load_image(path)
        mask = self.provider.mask_for(path, image).mask
        if not mask.any():
            raise ValueError(f"{path}: its lung mask is empty, so its lungs cannot be cut out")
        if self.blank:
            image = blank_outside(image, Image.fromarray(mask.astype(np.uint8) * 255))
        return crop(image, box_of(mask, self.margin)) if self.to_box else image
