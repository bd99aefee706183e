"""Cleanup of thresholded masks: two largest regions kept, holes filled."""

from __future__ import annotations

import numpy as np

from deepcovid.lungs.postprocess import clean_mask, keep_largest, region_sizes


def two_lungs_and_a_speck() -> np.ndarray:
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:35, 3:15] = True  # 360 px
    mask[5:30, 22:36] = True  # 350 px
    mask[37:39, 37:39] = True  # speck, 4 px
    return mask


def test_keep_largest_drops_the_speck() -> None:
    mask = two_lungs_and_a_speck()
    kept = keep_largest(mask)
    assert kept.sum() == 360 + 350 and not kept[37:39, 37:39].any()
    labels, sizes = region_sizes(mask)
    assert sorted(sizes.tolist()) == [4, 350, 360] and labels.max() == 3
    assert len(region_sizes(kept)[1]) == 2


def test_clean_mask_fills_holes_but_not_the_gap_between_lungs() -> None:
    mask = two_lungs_and_a_speck()
    mask[10:15, 6:10] = False  # a hole in the right lung (a pacemaker)
    cleaned = clean_mask(mask)
    assert cleaned[10:15, 6:10].all()
    assert not cleaned[:, 16:21].any()
    assert cleaned.sum() == 360 + 350


def test_cleanup_of_small_and_empty_masks() -> None:
    one = np.zeros((10, 10), dtype=bool)
    one[2:5, 2:5] = True
    np.testing.assert_array_equal(clean_mask(one), one)
    assert not clean_mask(np.zeros((10, 10), dtype=bool)).any()
