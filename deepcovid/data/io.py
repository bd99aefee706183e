"""Read any chest X-ray file (PNG, JPEG, 16-bit PNG, DICOM) into one 8-bit grayscale image.

Chest radiographs are single-channel: whatever the container (RGB, RGBA, palette, CMYK,
16-bit, MONOCHROME1 DICOM), the reader returns a PIL image in mode ``"L"`` and leaves
resizing and channel replication to the transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

DICOM_SUFFIXES = {".dcm", ".dicom"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"} | DICOM_SUFFIXES
# Decompression-bomb guard: images with more decoded pixels than this are refused, not decoded.
# 100 MP is 5x the largest digital chest radiograph (43 cm at 100 um = 4300 x 4300 = 18.5 MP)
# and keeps one decoded RGBA frame under 400 MB; Pillow's own default is 89.5 MP.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
RAISE_LIMIT = "Raise data.max_image_pixels if this image is trusted."
TURNED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


class UnreadableImageError(ValueError):
    """A file that cannot be decoded as a chest X-ray; the message names the file."""


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has a suffix deepcovid reads (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Linearly rescale an integer or float array to the full 0..255 range."""
    array = array.astype(np.float64)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round((array - low) * (255.0 / (high - low))).astype(np.uint8)


def pil_to_grayscale(image: Image.Image) -> Image.Image:
    """Convert a decoded PIL image of any mode to 8-bit grayscale ("L")."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "L":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(to_uint8(np.asarray(image)), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA"):
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB").convert("L")


@dataclass(frozen=True)
class DecodedImage:
    """A decoded radiograph: the 8-bit grayscale image, the container it came in (e.g.
    ``RGB``, ``I;16``, ``MONOCHROME1/12bit``) and its full (width, height), upright: the
    image itself is smaller when it was decoded at a reduced scale."""

    image: Image.Image
    container_mode: str
    size: tuple[int, int]


def decode_dicom(source: BinaryIO, path: Path) -> DecodedImage:
    """Decode a DICOM file, apply the modality LUT (rescale) then the VOI LUT (window) and
    invert MONOCHROME1."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(source)
        size = (int(dataset.Columns), int(dataset.Rows))
        check_pixel_count(path, size[0] * size[1])
        pixels = dataset.pixel_array
    except UnreadableImageError:
        raise
    except Exception as error:
        raise UnreadableImageError(
            f"{path}: not a readable DICOM image ({type(error).__name__}: {error}). "
            "Remove the file or replace it with a valid export."
        ) from error
    photometric = str(getattr(dataset, "PhotometricInterpretation", ""))
    container = f"{photometric}/{getattr(dataset, 'BitsStored', '?')}bit"
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        rgb = Image.fromarray(pixels[..., :3].astype(np.uint8))
        return DecodedImage(pil_to_grayscale(rgb), container, size)
    if pixels.ndim != 2:
        raise UnreadableImageError(
            f"{path}: DICOM pixel data has shape {pixels.shape}; expected a single 2-D frame."
        )
    gray = to_uint8(apply_voi_lut(apply_modality_lut(pixels, dataset), dataset))
    if photometric == "MONOCHROME1":
        gray = 255 - gray
    return DecodedImage(Image.fromarray(gray, mode="L"), container, size)


def draft_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    """The smallest size of an image of ``size`` whose short side is still ``short_side``:
    what :meth:`PIL.Image.Image.draft` may reduce a JPEG's DCT scale down to."""
    scale = min(1.0, short_side / min(size))
    return max(1, math.ceil(size[0] * scale)), max(1, math.ceil(size[1] * scale))


def upright_size(image: Image.Image) -> tuple[int, int]:
    """The stored image's (width, height), swapped when its EXIF orientation turns it."""
    turned = image.getexif().get(ExifTags.Base.Orientation) in TURNED
    return (image.height, image.width) if turned else image.size


def decode_raster(source: BinaryIO, path: Path, short_side: int | None = None) -> DecodedImage:
    """Decode a PNG/JPEG/BMP/TIFF file fully (so truncation is detected here). With
    ``short_side``, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps its
    short side at least that long: every coefficient is still read, only the inverse DCT is
    smaller. The pixel limit is checked on the header's size, before any pixel is decoded."""
    try:
        with Image.open(source) as image:
            size = upright_size(image)
            check_pixel_count(path, size[0] * size[1])
            if short_side is not None:
                image.draft(image.mode, draft_size(image.size, short_side))
            image.load()
            return DecodedImage(pil_to_grayscale(image), image.mode, size)
    except Image.DecompressionBombError as error:  # over twice Pillow's limit, inside open
        raise UnreadableImageError(f"{path}: {error} {RAISE_LIMIT}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(
            f"{path}: cannot decode image ({type(error).__name__}: {error}). "
            "The file is truncated, empty or not an image: re-export it or remove it."
        ) from error


def decode_image(source: BinaryIO, path: str | Path, short_side: int | None = None) -> DecodedImage:
    """Decode the chest X-ray file ``path`` read through ``source`` (an open binary file);
    ``short_side``: see :func:`decode_raster` (DICOM is always decoded whole)."""
    path = Path(path)
    if not source.read(1):
        raise UnreadableImageError(f"{path}: the file is empty (0 bytes); remove it.")
    source.seek(0)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return decode_dicom(source, path)
    return decode_raster(source, path, short_side)


def load_image(path: str | Path) -> Image.Image:
    """Read a chest X-ray file into an 8-bit grayscale PIL image.

    Raises :class:`UnreadableImageError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return decode_image(handle, path).image
    except (FileNotFoundError, IsADirectoryError) as error:
        raise UnreadableImageError(f"{path}: no such file.") from error
    except OSError as error:  # permissions, a vanished mount, an I/O error
        raise UnreadableImageError(
            f"{path}: cannot be read ({error.strerror or error}); check its permissions "
            "and the disk it is on."
        ) from error


def set_max_image_pixels(max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> None:
    """Set the decompression-bomb limit (Pillow's ``Image.MAX_IMAGE_PIXELS``): images with more
    pixels are refused, not decoded. None disables the guard. Every reader here checks it
    itself on the header's size (:func:`check_pixel_count`): between the limit and twice it
    Pillow only warns, and a warnings filter does not hold across decoding threads.

    The limit is process-wide; DataLoader workers inherit it when forked (Linux).
    """
    Image.MAX_IMAGE_PIXELS = max_pixels


def check_pixel_count(path: Path, pixels: int) -> None:
    """Refuse an image with more pixels than the decompression-bomb limit."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and pixels > limit:
        raise UnreadableImageError(
            f"{path}: image size ({pixels} pixels) exceeds the limit of {limit} pixels "
            f"(decompression-bomb guard). {RAISE_LIMIT}"
        )
