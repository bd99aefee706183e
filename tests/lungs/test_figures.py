"""Grids of lung-mask thumbnails: shrunk to at most THUMBNAIL pixels, contours drawn."""

import numpy as np
from PIL import Image

from deepcovid.lungs.figures import THUMBNAIL, Panel, mask_grid, thumbnail


def test_thumbnails_keep_the_aspect_and_masks_stay_binary() -> None:
    image = Image.new("L", (4 * THUMBNAIL, 2 * THUMBNAIL), 100)
    mask = np.zeros((2 * THUMBNAIL, 4 * THUMBNAIL), dtype=bool)
    mask[:, : 2 * THUMBNAIL] = True
    assert thumbnail(image).shape == (THUMBNAIL // 2, THUMBNAIL)
    small = thumbnail(image, mask)
    assert small.dtype == bool and small.shape == (THUMBNAIL // 2, THUMBNAIL)
    assert small[:, : THUMBNAIL // 2].all() and not small[:, THUMBNAIL // 2 :].any()
    assert thumbnail(Image.new("L", (20, 10))).shape == (10, 20)  # small images are not enlarged


def test_the_grid_has_a_panel_per_image_and_a_contour_per_partial_mask() -> None:
    image = Image.new("L", (64, 64), 50)
    mask = np.zeros((64, 64), dtype=bool)
    mask[16:48, 8:30] = True
    panels = [
        Panel(image, [(mask, "#2ca02c")], "a"),
        Panel(image, [(np.zeros_like(mask), "red")], "b"),
    ]
    panels += [Panel(image, title=str(i)) for i in range(3)]
    figure = mask_grid(panels, columns=2, suptitle="masks")
    axes = figure.get_axes()
    assert len(axes) == 6  # 3 rows of 2, the last one empty
    assert [ax.get_title() for ax in axes[:5]] == ["a", "b", "0", "1", "2"]
    assert len(axes[0].collections) == 1 and len(axes[1].collections) == 0  # empty mask: none
