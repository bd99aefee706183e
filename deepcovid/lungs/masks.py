"""Lung masks as data: the V7 Labs masks shipped inside torchxrayvision, mask files and folders,
fitting a mask to an image, and cropping an image to its lungs.

A mask here is a 2-D ``bool`` array, ``True`` on lung, shaped ``(height, width)`` like the
image it belongs to. Nothing in this module needs torch.

The V7 masks (``torchxrayvision/data/semantic_masks_v7labs_lungs.zip``, 517 PNGs) cover images
of the COVID-19 image data collection (ieee8023/covid-chestxray-dataset) at the originals'
resolution, one PNG per image, named like the image file. Pixel values: 255 lung (both lungs,
including the part behind the heart), 127 V7's "Ignore" class (pacemakers, tubes, arrows and
text overlapping the image), 0 background. Lateral views and CT slices have an empty (all-0)
mask: V7 did not outline lungs on them, so an empty mask counts as no mask.
"""

from __future__ import annotations

import importlib.util
import io
import zipfile
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

V7_ZIP_NAME = "semantic_masks_v7labs_lungs.zip"
V7_LUNG = 255
V7_IGNORE = 127
# Relative difference of width/height allowed between a mask and its image before the mask is
# refused: downscaling to a 256-px short side rounds the long side by at most half a pixel
# (0.4 % at 256 px), so 2 % passes every honest resize and refuses a mask of another crop.
MAX_ASPECT_MISMATCH = 0.02
MASK_SUFFIX = ".png"
INSTALL_HINT = "pip install 'deepcovid[lungs]' (or: pip install --no-deps torchxrayvision)"


class MaskMismatchError(ValueError):
    """A mask that does not belong to its image (shape); the message names both."""


def locate_v7_zip() -> Path:
    """The V7 lung-mask zip inside the installed torchxrayvision package, found without
    importing it (its import pulls in imageio, scikit-image, requests…)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The V7 lung masks ship inside the torchxrayvision package, which is not "
            f"installed: {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / V7_ZIP_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"torchxrayvision is installed at {list(spec.submodule_search_locations)} but has no "
        f"data/{V7_ZIP_NAME} (versions >= 1.2 ship it): {INSTALL_HINT} --upgrade"
    )


def v7_available() -> bool:
    """Whether the V7 lung masks can be read here (torchxrayvision installed)."""
    try:
        locate_v7_zip()
    except FileNotFoundError:
        return False
    return True


def mask_from_pixels(pixels: np.ndarray) -> np.ndarray:
    """Lung = pixels at or above half the mask's maximum (0/1, 0/255 and V7's 0/127/255
    masks alike); an all-zero mask is all background."""
    if pixels.ndim != 2:
        raise ValueError(f"a mask is one 2-D plane; got an array of shape {pixels.shape}")
    peak = pixels.max(initial=0)
    return pixels >= peak / 2 if peak > 0 else np.zeros(pixels.shape, dtype=bool)


def read_mask_file(path: str | Path) -> np.ndarray:
    """A mask image file (PNG etc., any mode) as a bool lung mask; see :func:`mask_from_pixels`."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L") if image.mode not in ("L", "1") else image)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable mask image ({error})") from error
    return mask_from_pixels(pixels.astype(np.uint8))


def fit_mask(mask: np.ndarray, size: tuple[int, int], source: str = "mask") -> np.ndarray:
    """``mask`` resized (nearest) to an image of ``size = (width, height)``.

    Refuses, naming ``source``, a mask whose aspect ratio differs from the image's by more than
    :data:`MAX_ASPECT_MISMATCH`: it was drawn on another crop of the image, and stretching it
    would misplace the lungs.
    """
    width, height = size
    mask_height, mask_width = mask.shape
    if (mask_width, mask_height) == (width, height):
        return mask.astype(bool, copy=False)
    mismatch = abs((mask_width / mask_height) / (width / height) - 1.0)
    if mismatch > MAX_ASPECT_MISMATCH:
        raise MaskMismatchError(
            f"{source}: the mask is {mask_width}x{mask_height} but the image is {width}x{height}; "
            f"their aspect ratios differ by {mismatch:.1%} (more than {MAX_ASPECT_MISMATCH:.0%}), "
            "so the mask belongs to another crop of the image. Supply a mask drawn on this image."
        )
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (width, height), Image.Resampling.NEAREST
    )
    return np.asarray(resized) > 0


class V7LungMasks:
    """The V7 Labs lung masks, looked up by image file name (``name → zip member``)."""

    def __init__(self, zip_path: str | Path | None = None) -> None:
        self.zip_path = Path(zip_path) if zip_path is not None else locate_v7_zip()

    @cached_property
    def members(self) -> Mapping[str, str]:
        """File name (as the image's, e.g. ``covid-19-pneumonia-15-PA.jpg``) → zip member."""
        with zipfile.ZipFile(self.zip_path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
        return {PurePosixPath(name).name: name for name in names}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.members

    def __len__(self) -> int:
        return len(self.members)

    def read_labels(self, name: str) -> np.ndarray:
        """The raw uint8 mask of image file ``name``: :data:`V7_LUNG`, :data:`V7_IGNORE`, 0."""
        if name not in self.members:
            raise KeyError(f"{name}: no V7 lung mask in {self.zip_path}")
        with zipfile.ZipFile(self.zip_path) as archive:
            data = archive.read(self.members[name])
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L"))

    def read_mask(self, name: str) -> np.ndarray:
        """The lung mask (bool, the original's resolution) of image file ``name``."""
        return self.read_labels(name) == V7_LUNG

    def mask_for(self, image_path: str | Path, size: tuple[int, int]) -> np.ndarray | None:
        """The lung mask for the image at ``image_path`` (matched by file name), fitted to
        ``size = (width, height)`` with :func:`fit_mask`; None when V7 has no mask for it or
        only an empty one (lateral views, CT)."""
        name = Path(image_path).name
        if name not in self.members:
            return None
        mask = self.read_mask(name)
        if not mask.any():
            return None
        return fit_mask(mask, size, source=f"V7 mask {name} for {image_path}")


def given_masks(column: Iterable[object]) -> list[str | None]:
    """The mask file of each row of a sample table's ``lung_mask`` column, None where the cell is
    blank: None, NaN or pandas' NA alike (pandas 3 keeps NaN in a string column where pandas 2
    gave None), so that no blank cell reaches a path function as a float."""
    return [cell if isinstance(cell, str) and cell.strip() else None for cell in column]


def folder_mask_path(mask_dir: str | Path, image_path: str | Path) -> Path | None:
    """``mask_dir/<image stem>.png`` when that file exists, else None."""
    candidate = Path(mask_dir) / (Path(image_path).stem + MASK_SUFFIX)
    return candidate if candidate.is_file() else None


def lung_box(mask: np.ndarray, margin: float = 0.05) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the mask's lung pixels (right/bottom exclusive, as
    PIL's ``crop`` takes them), widened by ``margin`` × the box's size on each side and kept
    inside the image. An empty mask is an error: there is nothing to crop to."""
    rows, columns = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the lung mask is empty: no lung box to crop to")
    height, width = mask.shape
    top, bottom = int(rows.min()), int(rows.max()) + 1
    left, right = int(columns.min()), int(columns.max()) + 1
    pad_x, pad_y = round(margin * (right - left)), round(margin * (bottom - top))
    return (
        max(0, left - pad_x),
        max(0, top - pad_y),
        min(width, right + pad_x),
        min(height, bottom + pad_y),
    )
