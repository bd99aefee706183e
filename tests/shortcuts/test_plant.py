"""The positive control's marker: where it sits, what it looks like, and the marked copy."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepcovid.shortcuts.plant import draw_marker, marker_box, marker_mask, plant


def test_the_marker_sits_in_the_centre_squares_top_left_corner() -> None:
    assert marker_box((200, 100)) == (54, 4, 16)  # centre square x 50..150
    mask = marker_mask((200, 100))
    assert mask.shape == (100, 200) and mask.sum() == 17 * 17
    assert mask[4:21, 54:71].all()


def test_the_drawn_marker_is_black_with_white_checks_and_nothing_else_changes() -> None:
    image = Image.fromarray(np.full((100, 100), 128, dtype=np.uint8))
    marked = np.asarray(draw_marker(image))
    mask = marker_mask(image.size)
    assert marked.shape == (100, 100, 3)
    assert (marked[~mask] == 128).all()
    inside = marked[mask][:, 0]
    assert set(np.unique(inside)) == {0, 255}


def test_plant_marks_only_the_named_folders_of_a_copy(tmp_path: Path) -> None:
    for split, folder in (("train", "covid"), ("train", "normal"), ("test", "covid")):
        (tmp_path / "src" / split / folder).mkdir(parents=True)
        Image.new("L", (40, 40), 128).save(tmp_path / "src" / split / folder / "a.png")
    target = plant(tmp_path / "src", tmp_path / "dst", {"train": "covid"})
    marked = np.asarray(Image.open(target / "train" / "covid" / "a.png"))
    assert marked.ndim == 3 and (marked[marker_mask((40, 40))] != 128).any()
    for untouched in ("train/normal/a.png", "test/covid/a.png"):
        assert (np.asarray(Image.open(target / untouched)) == 128).all()
    assert (np.asarray(Image.open(tmp_path / "src" / "train" / "covid" / "a.png")) == 128).all()
    with pytest.raises(FileNotFoundError, match="test/normal: no images to mark"):
        plant(tmp_path / "src", tmp_path / "again", {"test": "normal"})
