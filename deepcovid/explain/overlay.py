"""Heatmaps drawn over X-rays: one image, or a grid for a panel. Arrays in, Figure out.

Signed maps (occlusion: positive where hiding the region lowers P(COVID)) get colour limits
symmetric around zero, so zero sits at the middle of a diverging colormap; non-negative maps
(Grad-CAM) span [0, max]. Each kind has one colormap: :data:`SIGNED_CMAP` and
:data:`UNSIGNED_CMAP` (:func:`heatmap_cmap` picks), unless a caller names another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepcovid import CLASS_TITLES

NAME_LENGTH = 36  # longer file names are cut in titles
SIGNED_CMAP = "RdBu_r"  # diverging, zero white: red = evidence for COVID, blue = against it
UNSIGNED_CMAP = "jet"  # non-negative maps: blue (none) to red (most)


def to_display(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A ``(C, H, W)`` or ``(H, W)`` image as an ``(H, W)`` grayscale array (first channel).

    Normalised model inputs are fine: imshow rescales to the image's own range."""
    array = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else image
    return np.asarray(array[0] if array.ndim == 3 else array, dtype=np.float32)


def colour_limits(heatmap: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax): symmetric for signed maps, [0, max] otherwise (never an empty range)."""
    low, high = float(np.nanmin(heatmap)), float(np.nanmax(heatmap))
    if low < 0:
        bound = max(-low, high, 1e-12)
        return -bound, bound
    return 0.0, max(high, 1e-12)


def heatmap_cmap(heatmap: np.ndarray) -> str:
    """The colormap of ``heatmap``'s kind: :data:`SIGNED_CMAP` when it has negative values,
    else :data:`UNSIGNED_CMAP`."""
    return SIGNED_CMAP if float(np.nanmin(heatmap)) < 0 else UNSIGNED_CMAP


def heatmap_title(
    prob_covid: float,
    threshold: float,
    label: int | None = None,
    name: str | None = None,
) -> str:
    """``name`` / ``P(COVID)=0.93 → COVID (threshold 0.2)`` / ``label: COVID``."""
    predicted = CLASS_TITLES[int(prob_covid >= threshold)]
    if name and len(name) > NAME_LENGTH:
        name = name[: NAME_LENGTH - 1] + "…"
    lines = [name] if name else []
    lines.append(f"P(COVID)={prob_covid:.3f} → {predicted} (threshold {threshold:g})")
    if label is not None:
        lines.append(f"label: {CLASS_TITLES[int(label)]}")
    return "\n".join(lines)


def draw_overlay(
    axes: Axes,
    image: np.ndarray,
    heatmap: np.ndarray,
    title: str,
    cmap: str | None,
    alpha: float,
    colorbar_label: str,
) -> None:
    """Draw ``heatmap`` over the grayscale ``image`` on ``axes``, with a colorbar; ``cmap``
    None: its kind's (:func:`heatmap_cmap`)."""
    if image.shape != heatmap.shape:
        raise ValueError(f"image {image.shape} and heatmap {heatmap.shape} differ in size")
    vmin, vmax = colour_limits(heatmap)
    axes.imshow(image, cmap="gray")
    layer = axes.imshow(
        heatmap, cmap=cmap or heatmap_cmap(heatmap), alpha=alpha, vmin=vmin, vmax=vmax
    )
    axes.figure.colorbar(layer, ax=axes, fraction=0.046, pad=0.04, label=colorbar_label)
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()


def overlay_figure(
    image: np.ndarray,
    heatmap: np.ndarray,
    title: str,
    cmap: str | None = None,
    alpha: float = 0.5,
    colorbar_label: str = "",
) -> Figure:
    """One X-ray ``(H, W)`` with its heatmap ``(H, W)`` on top."""
    figure = Figure(figsize=(5, 5), layout="constrained")
    draw_overlay(figure.add_subplot(), image, heatmap, title, cmap, alpha, colorbar_label)
    return figure


def figure_rgb(figure: Figure) -> np.ndarray:
    """The figure's pixels as a ``(rows, columns, 3)`` uint8 RGB array (for a DICOM
    Secondary Capture)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def grid_figure(
    images: Sequence[np.ndarray],
    heatmaps: Sequence[np.ndarray],
    titles: Sequence[str],
    columns: int = 4,
    cmap: str | None = None,
    alpha: float = 0.5,
    colorbar_label: str = "",
) -> Figure:
    """A panel of overlays, ``columns`` per row (each with its own colour scale)."""
    if not len(images) == len(heatmaps) == len(titles) or not images:
        raise ValueError(
            f"grid_figure needs as many images ({len(images)}), heatmaps ({len(heatmaps)}) "
            f"and titles ({len(titles)}), at least one"
        )
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    figure = Figure(figsize=(4.2 * columns, 4.4 * rows), layout="constrained")
    for position, (image, heatmap, title) in enumerate(zip(images, heatmaps, titles, strict=True)):
        axes = figure.add_subplot(rows, columns, position + 1)
        draw_overlay(axes, image, heatmap, title, cmap, alpha, colorbar_label)
    return figure
