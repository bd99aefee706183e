"""Clean a thresholded lung mask: keep the two largest regions, fill their holes."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# 8-connectivity: lung pixels touching at a corner are one region.
CONNECTIVITY = np.ones((3, 3), dtype=bool)
N_LUNGS = 2


def region_sizes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mask's connected regions as a label image, and each region's pixel count
    (``sizes[k - 1]`` is region ``k``'s)."""
    labels, count = ndimage.label(mask, structure=CONNECTIVITY)
    return labels, np.bincount(labels.ravel(), minlength=count + 1)[1:]


def keep_largest(mask: np.ndarray, n: int = N_LUNGS) -> np.ndarray:
    """The ``n`` largest connected regions of ``mask`` (ties: the first labelled)."""
    labels, sizes = region_sizes(mask)
    if sizes.size <= n:
        return mask.astype(bool, copy=True)
    kept = np.argsort(sizes, kind="stable")[::-1][:n] + 1
    return np.isin(labels, kept)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """The two largest regions of ``mask`` with their holes filled."""
    return ndimage.binary_fill_holes(keep_largest(mask))
