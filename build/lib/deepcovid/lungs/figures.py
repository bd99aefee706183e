"""Figures of lung masks: image thumbnails with mask contours drawn over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

THUMBNAIL = 128  # pixels, longer side: keeps a grid of a hundred panels near 1 MB
TRUTH_COLOUR, PREDICTION_COLOUR = "#2ca02c", "#d62728"


@dataclass(frozen=True)
class Panel:
    """One image with ``(mask, colour)`` contours and a caption."""

    image: Image.Image
    contours: Sequence[tuple[np.ndarray, str]] = field(default_factory=tuple)
    title: str = ""
    title_colour: str = "black"


def thumbnail(image: Image.Image, mask: np.ndarray | None = None) -> np.ndarray:
    """``image`` (or ``mask``, nearest) shrunk so its longer side is at most THUMBNAIL."""
    scale = min(1.0, THUMBNAIL / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if mask is None:
        return np.asarray(image.resize(size, Image.Resampling.BILINEAR))
    shrunk = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.NEAREST)
    return np.asarray(shrunk) > 0


def mask_grid(
    panels: Sequence[Panel], columns: int = 8, panel_inches: float = 1.3, suptitle: str = ""
) -> Figure:
    """A grid of thumbnails with their contours; ``columns`` per row."""
    columns = max(1, min(columns, len(panels)))
    rows = max(1, -(-len(panels) // columns))
    figure = Figure(figsize=(columns * panel_inches, rows * (panel_inches + 0.25) + 0.4))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        ax.imshow(thumbnail(panel.image), cmap="gray", vmin=0, vmax=255)
        for mask, colour in panel.contours:
            small = thumbnail(panel.image, mask)
            if small.any() and not small.all():
                ax.contour(small, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(panel.title, fontsize=5, color=panel.title_colour)
    top = 1.0
    if suptitle:
        figure.suptitle(suptitle, fontsize=7)
        top = 1.0 - 0.3 / figure.get_figheight()
    figure.tight_layout(rect=(0.0, 0.0, 1.0, top), pad=0.3)
    return figure
