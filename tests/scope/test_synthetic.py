"""Synthetic non-radiographs for the scope check: seeded, uint8, every kind drawn."""

import numpy as np

from deepcovid.scope.synthetic import synthetic_image, to_uint8


def test_images_are_seeded_uint8_squares_of_varied_content() -> None:
    first = [synthetic_image(np.random.default_rng(3), 32) for _ in range(2)]
    assert np.array_equal(first[0], first[1])  # the seed alone decides the image
    rng = np.random.default_rng(0)
    images = [synthetic_image(rng, 32) for _ in range(40)]
    assert all(im.shape == (32, 32) and im.dtype == np.uint8 for im in images)
    assert len({im.tobytes() for im in images}) == 40
    assert any(im.min() == im.max() for im in images)  # flat fields among them
    assert any(im.min() == 0 and im.max() == 255 for im in images)  # stretched to the full range


def test_to_uint8_stretches_to_the_full_range_and_keeps_a_constant_clipped() -> None:
    assert to_uint8(np.array([[-1.0, 0.0, 1.0]])).tolist() == [[0, 127, 255]]
    assert to_uint8(np.full((2, 2), 300.0)).tolist() == [[255, 255], [255, 255]]
