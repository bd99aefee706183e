"""Window placement and averaging: Captum's rules, checked by hand on small cases."""

import pytest
import torch

from deepcovid.explain.grid import OcclusionGrid


def test_positions_follow_captums_count_and_cut_the_last_window():
    grid = OcclusionGrid.create((11, 8), (4, 3), (3, 2))
    assert grid.counts == (4, 4)  # ceil((11-4)/3)+1, ceil((8-3)/2)+1
    tops, lefts = grid.positions()
    assert tops.tolist() == [0] * 4 + [3] * 4 + [6] * 4 + [9] * 4  # row-major
    assert lefts.tolist() == [0, 2, 4, 6] * 4
    masks = grid.masks(tops, lefts)[:, 0]
    assert masks.shape == (16, 11, 8)
    assert masks[0, :4, :3].all() and masks[0].sum() == 12
    assert masks[15, 9:, 6:].all() and masks[15].sum() == 4  # overhangs both edges: cut to 2×2


def test_attribution_averages_over_covering_windows():
    grid = OcclusionGrid.create((4, 4), (2, 2), (1, 1))
    assert torch.allclose(
        grid.attribution(torch.full((9,), 0.25)), torch.full((4, 4), 0.25).double()
    )
    drops = torch.zeros(9)
    drops[0] = 1.0  # only the top-left window dropped the score
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[0, 0], expected[0, 1], expected[1, 0], expected[1, 1] = 1, 1 / 2, 1 / 2, 1 / 4
    assert torch.allclose(grid.attribution(drops), expected)


@pytest.mark.parametrize(
    ("window", "stride", "message"),
    [
        (9, 1, "larger than the image"),
        (3, 4, "exceeds window"),
        (0, 1, "positive"),
        (2.5, 1, "positive"),
    ],
)
def test_bad_windows_are_refused_with_the_reason(window, stride, message):
    with pytest.raises(ValueError, match=message):
        OcclusionGrid.create((8, 8), window, stride)


def test_stride_beyond_a_full_size_window_is_allowed():
    assert len(OcclusionGrid.create((8, 8), (8, 2), (20, 2))) == 4
