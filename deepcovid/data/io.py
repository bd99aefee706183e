"""Read any chest X-ray file (PNG, JPEG, 16-bit PNG, DICOM) into one 8-bit grayscale image.

Chest radiographs are single-channel: whatever the container (RGB, RGBA, palette, CMYK,
16-bit, MONOCHROME1 DICOM), the reader returns a PIL image in mode ``"L"`` and leaves
resizing and channel replication to the transforms.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DICOM_SUFFIXES = {".dcm", ".dicom"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"} | DICOM_SUFFIXES
# Decompression-bomb guard: images with more decoded pixels than this are refused, not decoded.
# 100 MP is 5x the largest digital chest radiograph (43 cm at 100 um = 4300 x 4300 = 18.5 MP)
# and keeps one decoded RGBA frame under 400 MB; Pillow's own default is 89.5 MP.
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
RAISE_LIMIT = "Raise data.max_image_pixels if this image is trusted."


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


def read_dicom(path: Path) -> Image.Image:
    """Decode a DICOM radiograph, apply its VOI LUT and invert MONOCHROME1."""
    import pydicom
    from pydicom.pixels import apply_voi_lut

    try:
        dataset = pydicom.dcmread(path)
        check_pixel_count(path, int(dataset.Rows) * int(dataset.Columns))
        pixels = dataset.pixel_array
    except UnreadableImageError:
        raise
    except Exception as error:
        raise UnreadableImageError(
            f"{path}: not a readable DICOM image ({type(error).__name__}: {error}). "
            "Remove the file or replace it with a valid export."
        ) from error
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        return pil_to_grayscale(Image.fromarray(pixels[..., :3].astype(np.uint8)))
    if pixels.ndim != 2:
        raise UnreadableImageError(
            f"{path}: DICOM pixel data has shape {pixels.shape}; expected a single 2-D frame."
        )
    pixels = apply_voi_lut(pixels, dataset)
    gray = to_uint8(pixels)
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        gray = 255 - gray
    return Image.fromarray(gray, mode="L")


def read_raster(path: Path) -> Image.Image:
    """Decode a PNG/JPEG/BMP/TIFF file fully (so truncation is detected here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return pil_to_grayscale(image)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise UnreadableImageError(f"{path}: {error} {RAISE_LIMIT}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(
            f"{path}: cannot decode image ({type(error).__name__}: {error}). "
            "The file is truncated, empty or not an image: re-export it or remove it."
        ) from error


def load_image(path: str | Path) -> Image.Image:
    """Read a chest X-ray file into an 8-bit grayscale PIL image.

    Raises :class:`UnreadableImageError` naming the file when it cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableImageError(f"{path}: no such file.")
    if path.stat().st_size == 0:
        raise UnreadableImageError(f"{path}: the file is empty (0 bytes); remove it.")
    if path.suffix.lower() in DICOM_SUFFIXES:
        return read_dicom(path)
    return read_raster(path)


def set_max_image_pixels(max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> None:
    """Set the decompression-bomb limit (Pillow's, which the DICOM reader applies too): images
    with more pixels are refused, not decoded. None disables the guard.

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
