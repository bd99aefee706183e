"""The audit's figures: one panel per method (and per image row), titled from the data."""

import numpy as np
import pandas as pd

from deepcovid.explain.sanity import Deletion, Randomisation, RandomisationStep, SanityCheck
from deepcovid.shortcuts.figures import (
    contour_grid_figure,
    panel_titles,
    sanity_figure,
    share_distribution_figure,
)
from deepcovid.shortcuts.measure import Panel

METHODS = {"gradcam": "Grad-CAM", "occlusion": "occlusion"}


def test_share_distributions_have_one_axes_per_method_and_the_lungs_area() -> None:
    images = pd.DataFrame({"label": [0, 1, 0, 1], "lung_area_share": [0.2, 0.4, 0.3, 0.3],
                           "lung_share_gradcam": [0.1, 0.9, np.nan, 0.5],
                           "lung_share_occlusion": [0.3, 0.2, 0.4, 0.6]})  # fmt: skip
    axes = share_distribution_figure(images, METHODS).get_axes()
    assert [a.get_title() for a in axes] == ["Grad-CAM", "occlusion"]
    assert axes[0].get_legend().get_texts()[0].get_text() == "lungs' area 0.30"


def test_the_contour_grid_has_a_row_per_image_and_says_when_there_is_none() -> None:
    mask = np.zeros((16, 16), dtype=bool)
    mask[4:12, 2:8] = True
    heatmap = np.random.default_rng(0).random((16, 16))
    panel = Panel(rows=[3, 7], images=[np.zeros((16, 16, 3))] * 2, masks=[mask] * 2,
                  heatmaps={m: [heatmap] * 2 for m in METHODS})  # fmt: skip
    images = pd.DataFrame(
        {"label": [0] * 3 + [1] + [0] * 3 + [0], "prob_covid": np.linspace(0, 0.7, 8)}
    )
    titles = panel_titles(panel, images)
    assert titles == ["COVID, P(COVID)=0.30", "non-COVID, P(COVID)=0.70"]
    axes = contour_grid_figure(panel, METHODS, titles).get_axes()
    assert [a.get_title() for a in axes] == [
        titles[0],
        *METHODS.values(),
        titles[1],
        *METHODS.values(),
    ]
    (empty,) = contour_grid_figure(Panel(), METHODS, []).get_axes()
    assert empty.texts[0].get_text() == "no image with a lung mask"


def test_the_sanity_figure_shows_the_cascade_and_the_deletion_per_method() -> None:
    steps = [RandomisationStep("head", 1, "fc", 0.9, 0.8, 0),
             RandomisationStep("head + top 50 % of layers", 3, "layer3", 0.2, 0.3, 1)]  # fmt: skip
    check = SanityCheck(Randomisation(8, steps, False),
                        Deletion(8, [0.0, 0.5], [0.9, 0.2], [0.9, 0.6], 0.1))  # fmt: skip
    axes = sanity_figure({"gradcam": check}, {"gradcam": "Grad-CAM"}).get_axes()
    assert [a.get_title() for a in axes] == [
        "Grad-CAM: weights randomised",
        "deletion (area between +0.100)",
    ]
    assert list(axes[0].lines[0].get_ydata()) == [0.9, 0.2]
