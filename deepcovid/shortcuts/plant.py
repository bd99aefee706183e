"""The audit's positive control: a copy of a data set with a synthetic marker planted outside
the lungs on the images of chosen split/class folders.

A model trained on the copy can learn the marker alone; the audit must then flag it, its
heatmaps must point at it, and a lung crop must take it away. The marker (a black square with
two white checks) sits near the top-left corner of each image's centre square, 16 % of its
side: above and beside the lungs on a frontal chest X-ray, inside what the eval crop keeps.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from deepcovid.data.samples import list_images

MARKER_OFFSET = 0.04  # of the centre square's side, from its top-left corner
MARKER_SIDE = 0.16


def marker_box(size: tuple[int, int]) -> tuple[int, int, int]:
    """(x, y, side) of the marker in an image of ``size`` (width, height)."""
    width, height = size
    side = min(width, height)
    return (
        (width - side) // 2 + int(MARKER_OFFSET * side),
        (height - side) // 2 + int(MARKER_OFFSET * side),
        int(MARKER_SIDE * side),
    )


def marker_mask(size: tuple[int, int]) -> np.ndarray:
    """A (height, width) boolean mask of the marker's pixels."""
    x, y, side = marker_box(size)
    mask = np.zeros((size[1], size[0]), dtype=bool)
    mask[y : y + side + 1, x : x + side + 1] = True
    return mask


def draw_marker(image: Image.Image) -> Image.Image:
    """``image`` (as RGB) with the marker drawn on it."""
    image = image.convert("RGB")
    x, y, side = marker_box(image.size)
    half, end = side // 2, side - 3
    draw = ImageDraw.Draw(image)
    draw.rectangle((x, y, x + side, y + side), fill=(0, 0, 0))
    draw.rectangle((x + 3, y + 3, x + half, y + half), fill=(255, 255, 255))
    draw.rectangle((x + half, y + half, x + end, y + end), fill=(255, 255, 255))
    return image


def plant(source: str | Path, target: str | Path, marked: Mapping[str, str]) -> Path:
    """Copy ``source`` to ``target`` and draw the marker on the images of each
    ``split → class folder`` in ``marked`` (e.g. ``{"train": "covid", "test": "covid"}``),
    keeping their names and formats (masks and manifests still match them)."""
    target = Path(target)
    shutil.copytree(source, target)
    for split, folder in marked.items():
        images = list_images(target / split / folder)
        if not images:
            raise FileNotFoundError(f"{target / split / folder}: no images to mark")
        for path in images:
            with Image.open(path) as image:
                marked_image = draw_marker(image)
            marked_image.save(path)
    return target
