"""Overlays: image + heatmap + colorbar + title, a grid for panels, PNG files."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from deepcovid.explain.overlay import (
    SIGNED_CMAP,
    UNSIGNED_CMAP,
    colour_limits,
    grid_figure,
    heatmap_cmap,
    heatmap_title,
    overlay_figure,
    to_display,
)
from deepcovid.utils.files import save_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_overlay_has_image_heatmap_colorbar_and_title(tmp_path):
    image = np.random.default_rng(0).random((32, 40))
    heatmap = np.linspace(-0.2, 0.1, 32 * 40).reshape(32, 40)
    title = heatmap_title(0.87, 0.2, label=1, name="x.png")
    figure = overlay_figure(image, heatmap, title, cmap="RdBu_r", alpha=0.4, colorbar_label="drop")
    assert isinstance(figure, Figure)
    main, colorbar = figure.axes
    base, layer = main.get_images()
    assert base.get_cmap().name == "gray" and layer.get_cmap().name == "RdBu_r"
    assert layer.get_alpha() == 0.4 and layer.get_clim() == (-0.2, 0.2)  # symmetric: signed map
    assert colorbar.get_ylabel() == "drop"
    assert main.get_title() == "x.png\nP(COVID)=0.870 → COVID (threshold 0.2)\nlabel: COVID"
    path = save_figure(figure, tmp_path / "deep" / "overlay.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_title_states_prediction_at_the_threshold_and_shortens_long_names():
    assert heatmap_title(0.19, 0.2) == "P(COVID)=0.190 → non-COVID (threshold 0.2)"
    assert heatmap_title(0.2, 0.2, label=0).endswith("COVID (threshold 0.2)\nlabel: non-COVID")
    assert heatmap_title(0.5, 0.5, name="a" * 80).split("\n")[0] == "a" * 35 + "…"


def test_colour_limits():
    assert colour_limits(np.array([0.0, 0.5])) == (0.0, 0.5)
    assert colour_limits(np.array([-0.3, 0.1])) == (-0.3, 0.3)
    assert colour_limits(np.zeros(3))[1] > 0  # never an empty range


def test_grid_lays_out_a_panel(tmp_path):
    images = [np.random.default_rng(i).random((16, 16)) for i in range(5)]
    heatmaps = [np.full((16, 16), i / 5) for i in range(5)]
    figure = grid_figure(images, heatmaps, [f"image {i}" for i in range(5)], columns=2)
    overlays = [axes for axes in figure.axes if axes.get_images()]
    assert len(overlays) == 5
    assert overlays[0].get_subplotspec().get_gridspec().get_geometry() == (3, 2)
    assert [axes.get_title() for axes in overlays] == [f"image {i}" for i in range(5)]
    assert save_figure(figure, tmp_path / "grid.png").read_bytes()[:8] == PNG_SIGNATURE


def test_mismatches_are_refused():
    with pytest.raises(ValueError, match="as many"):
        grid_figure([np.zeros((4, 4))], [], ["a"])
    with pytest.raises(ValueError, match="differ in size"):
        overlay_figure(np.zeros((4, 4)), np.zeros((5, 4)), "t")


def test_display_uses_the_first_channel_of_a_model_input():
    image = torch.stack([torch.full((3, 3), float(c)) for c in range(3)])
    assert np.array_equal(to_display(image), np.zeros((3, 3), dtype=np.float32))
    assert to_display(np.ones((4, 5))).shape == (4, 5)


def test_each_kind_of_map_has_one_colormap_unless_one_is_named() -> None:
    image = np.zeros((8, 8))
    signed, unsigned = np.linspace(-1, 1, 64).reshape(8, 8), np.linspace(0, 1, 64).reshape(8, 8)
    assert heatmap_cmap(signed) == SIGNED_CMAP == "RdBu_r"
    assert heatmap_cmap(unsigned) == UNSIGNED_CMAP == "jet"
    for heatmap, expected in ((signed, SIGNED_CMAP), (unsigned, UNSIGNED_CMAP)):
        (_, layer) = overlay_figure(image, heatmap, "t").axes[0].get_images()
        assert layer.get_cmap().name == expected
        (_, named) = grid_figure([image], [heatmap], ["t"], cmap="viridis").axes[0].get_images()
        assert named.get_cmap().name == "viridis"
