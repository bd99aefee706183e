"""The heatmap overlay's pixels: an RGB uint8 array, anything else refused with its shape."""

import re

import numpy as np
import pytest

from deepcovid.dicom.secondary_capture import check_overlay


def test_an_rgb_uint8_overlay_is_made_contiguous() -> None:
    strided = np.zeros((8, 12, 3), dtype=np.uint8)[:, ::2]
    checked = check_overlay(strided)
    assert checked.flags["C_CONTIGUOUS"] and checked.shape == (8, 6, 3)


@pytest.mark.parametrize(
    "overlay",
    [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)],
)
def test_other_arrays_are_refused_with_their_shape_and_dtype(overlay: np.ndarray) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"got shape {overlay.shape} and dtype {overlay.dtype}")
    ):
        check_overlay(overlay)
