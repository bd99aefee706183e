"""Test-time views: the image first, then each augmentation's views, each named."""

import pytest
import torch

from deepcovid.models.tta import CornerCrop, tta_views


def test_the_views_are_the_image_then_each_augmentation() -> None:
    views = tta_views(["hflip", "crop"], 0.5)
    assert [v.name for v in views] == [
        "identity", "hflip", "crop_top_left_0.5", "crop_top_right_0.5", "crop_bottom_left_0.5",
        "crop_bottom_right_0.5",
    ]  # fmt: skip
    images = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(views[0](images), images)
    assert torch.equal(views[1](images)[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    assert [len(tta_views(n)) for n in ([], ["hflip"], ["crop"])] == [1, 2, 5]


def test_a_corner_crop_is_that_corner_resized_back() -> None:
    images = torch.zeros(1, 1, 8, 8)
    images[..., 4:, 4:] = 1.0  # the bottom-right quarter
    assert torch.equal(CornerCrop("bottom_right", 0.5)(images), torch.ones(1, 1, 8, 8))
    assert torch.equal(CornerCrop("top_left", 0.5)(images), torch.zeros(1, 1, 8, 8))


def test_unknown_or_repeated_augmentations_are_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown \['rotate'\]; choose from \['hflip', 'crop'\]"):
        tta_views(["rotate"])
    with pytest.raises(ValueError, match="each augmentation once"):
        tta_views(["hflip", "hflip"])
    with pytest.raises(ValueError, match=r"tta_crop_fraction=1.0: must lie in \(0, 1\)"):
        tta_views(["crop"], 1.0)
