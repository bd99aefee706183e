"""The audit's figures: lung-share distributions per class, and overlays with the lungs'
contour drawn (data in, matplotlib Figure out)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepcovid import CLASS_TITLES
from deepcovid.explain.overlay import colour_limits, heatmap_cmap
from deepcovid.explain.sanity import SanityCheck
from deepcovid.shortcuts.measure import Panel


def share_distribution_figure(images: pd.DataFrame, methods: Mapping[str, str]) -> Figure:
    """Per method (name → title), the lung share of positive attribution per image, by true
    class, against the lungs' share of the image (the dashed line: a uniform map)."""
    figure = Figure(figsize=(4.2 * len(methods), 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    for position, (method, title) in enumerate(methods.items(), start=1):
        axes = figure.add_subplot(1, len(methods), position)
        data = [
            images.loc[images["label"] == label, f"lung_share_{method}"].dropna().to_numpy()
            for label in (0, 1)
        ]
        axes.boxplot(data, tick_labels=list(CLASS_TITLES), showmeans=True)
        for label, values in enumerate(data, start=1):
            jitter = np.random.default_rng(label).uniform(-0.12, 0.12, len(values))
            axes.plot(label + jitter, values, ".", alpha=0.4, color="k", markersize=3)
        area = images["lung_area_share"].mean()
        axes.axhline(area, ls="--", color="grey", lw=1, label=f"lungs' area {area:.2f}")
        axes.set(ylim=(-0.02, 1.02), ylabel="share of positive attribution in the lungs",
                 title=title)  # fmt: skip
        axes.legend(loc="lower right", fontsize="small")
    return figure


def contour_grid_figure(panel: Panel, methods: Mapping[str, str], titles: list[str]) -> Figure:
    """One row per image: the X-ray with its lung contour, then each method's map on it
    (``methods``: name → title)."""
    names, rows, columns = list(methods), len(panel.rows), 1 + len(methods)
    figure = Figure(figsize=(3.0 * columns, 3.0 * max(rows, 1)), layout="constrained")
    FigureCanvasAgg(figure)
    for row in range(rows):
        image, mask = panel.images[row], panel.masks[row]
        for column in range(columns):
            axes = figure.add_subplot(rows, columns, row * columns + column + 1)
            axes.imshow(image, cmap="gray")
            if column:
                heatmap = panel.heatmaps[names[column - 1]][row]
                vmin, vmax = colour_limits(heatmap)
                axes.imshow(heatmap, cmap=heatmap_cmap(heatmap), alpha=0.5,
                            vmin=vmin, vmax=vmax)  # fmt: skip
            axes.contour(mask.astype(float), levels=[0.5], colors="lime", linewidths=1)
            axes.set_title(titles[row] if column == 0 else methods[names[column - 1]], fontsize=8)
            axes.set_axis_off()
    if not rows:
        axes = figure.add_subplot()
        axes.text(0.5, 0.5, "no image with a lung mask", ha="center", va="center")
        axes.set_axis_off()
    return figure


def panel_titles(panel: Panel, images: pd.DataFrame) -> list[str]:
    """``COVID, P(COVID)=0.93`` per grid image."""
    titles = []
    for row in panel.rows:
        image = images.iloc[row]
        name = CLASS_TITLES[int(image["label"])]
        titles.append(f"{name}, P(COVID)={image['prob_covid']:.2f}")
    return titles


def sanity_figure(checks: Mapping[str, SanityCheck], titles: Mapping[str, str]) -> Figure:
    """Per method: the rank correlation and SSIM with the original maps along the randomisation
    cascade, and the deletion curves (top-attributed against random pixels removed)."""
    figure = Figure(figsize=(8.4, 3.6 * len(checks)), layout="constrained")
    FigureCanvasAgg(figure)
    for row, (method, check) in enumerate(checks.items()):
        steps = check.randomisation.steps
        axes = figure.add_subplot(len(checks), 2, 2 * row + 1)
        axes.plot([s.spearman for s in steps], marker="o", label="Spearman")
        axes.plot([s.ssim for s in steps], marker="s", label="SSIM")
        axes.set_xticks(range(len(steps)), [s.step.replace(" + ", "\n+ ") for s in steps])
        axes.set_ylim(-1, 1.05)
        axes.set_ylabel("similarity to the original maps")
        axes.set_title(f"{titles.get(method, method)}: weights randomised")
        axes.legend(fontsize=8)
        deletion = check.deletion
        axes = figure.add_subplot(len(checks), 2, 2 * row + 2)
        axes.plot(deletion.fractions, deletion.attributed, marker="o", label="top-attributed")
        axes.plot(deletion.fractions, deletion.random, marker="s", label="random")
        axes.set_xlabel("share of pixels removed")
        axes.set_ylabel("mean P(COVID)")
        axes.set_title(f"deletion (area between {deletion.area_between:+.3f})")
        axes.legend(fontsize=8)
    return figure
