"""The most confident mistakes of an evaluated split: which they are, their CSV, their figure
(heatmaps and lung contours over the model's input) and their section of ``report.md``.

"Most confident" at the chosen threshold (COVID called for ``P(COVID) >= threshold``): the
false positives of highest P(COVID) and the false negatives of lowest, ties by path. The
threshold is an operating point chosen on val (``youden`` by default), or the model's default
one; where the rule has no threshold, the default one, and the CSV and figure say which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deepcovid import CLASS_TITLES
from deepcovid.explain.overlay import draw_overlay, heatmap_title
from deepcovid.metrics.summary import Evaluation
from deepcovid.metrics.threshold_selection import SELECTION_RULES
from deepcovid.utils.choices import checked_choice, choices

KINDS = {"FP": "false positive", "FN": "false negative"}
FAILURE_COLUMNS = ["rank", "kind", "path", "label", "prob_covid", "threshold", "operating_point"]
DEFAULT_POINT = "default"  # the model's own threshold (evaluation.threshold)
FAILURE_POINTS = (*SELECTION_RULES, DEFAULT_POINT)  # failures.operating_point
FailurePoint = choices("FailurePoint", FAILURE_POINTS)
CONTOUR_COLOUR = "lime"


@dataclass(frozen=True)
class FailureSettings:
    """``conf/failures/default.yaml``: how many mistakes of each kind, at which threshold, and
    how they are drawn."""

    count: int = 8
    operating_point: str = "youden"
    heatmaps: bool = True
    v7: bool = True
    segmenter: bool = False  # the shipped segmenter where no mask is known (slow on a CPU)
    columns: int = 4
    cmap: str | None = None  # None: the heatmap kind's (explain.overlay.heatmap_cmap)
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"failures.count={self.count}: expected >= 0 (0: none)")


@dataclass
class FailuresConfig:
    """``conf/failures``'s schema (registered in ``deepcovid.conf``): Hydra checks each key's
    type, and ``operating_point`` against its choices, when it composes the config."""

    _target_: str = f"{__name__}.FailureSettings"
    count: int = FailureSettings.count
    operating_point: FailurePoint = FailurePoint(FailureSettings.operating_point)
    heatmaps: bool = FailureSettings.heatmaps
    v7: bool = FailureSettings.v7
    segmenter: bool = FailureSettings.segmenter
    columns: int = FailureSettings.columns
    cmap: str | None = FailureSettings.cmap
    alpha: float = FailureSettings.alpha


def failure_threshold(evaluation: Evaluation, operating_point: str) -> tuple[float, str]:
    """(threshold, its name) of ``operating_point`` in ``evaluation``: a rule chosen on val, or
    ``default``; the default threshold, named so, where the rule found none."""
    operating_point = checked_choice("failures.operating_point", operating_point, FailurePoint)
    point = {point.name: point for point in evaluation.chosen_points}.get(operating_point)
    if point is not None and point.threshold is not None:
        return float(point.threshold), f"{operating_point}, chosen on {point.chosen_on}"
    if operating_point == DEFAULT_POINT:
        return evaluation.threshold, DEFAULT_POINT
    return evaluation.threshold, f"{DEFAULT_POINT}, as val gave no {operating_point} threshold"


def failure_cases(
    predictions: pd.DataFrame, threshold: float, count: int, operating_point: str
) -> pd.DataFrame:
    """The ``count`` false positives of highest P(COVID) then the ``count`` false negatives of
    lowest, ranked from 1 within each kind (ties by path)."""
    called = predictions["prob_covid"] >= threshold
    covid = predictions["label"] == 1
    parts = []
    for kind, mistaken, highest in (("FP", called & ~covid, True), ("FN", ~called & covid, False)):
        chosen = predictions[mistaken].sort_values(
            ["prob_covid", "path"], ascending=[not highest, True], kind="mergesort"
        )[:count]
        parts.append(chosen.assign(kind=kind, rank=np.arange(1, len(chosen) + 1)))
    cases = pd.concat(parts, ignore_index=True)
    cases = cases.assign(threshold=threshold, operating_point=operating_point)
    return cases[FAILURE_COLUMNS]


def figure_title(split: str, threshold: float, operating_point: str) -> str:
    return (
        f"Most confident mistakes on {split} at threshold {threshold:.4g} ({operating_point}): "
        "false positives by highest P(COVID), false negatives by lowest"
    )


def failure_figure(
    cases: pd.DataFrame,
    images: Sequence[np.ndarray],
    heatmaps: Sequence[np.ndarray] | None,
    masks: Sequence[np.ndarray | None],
    title: str,
    settings: FailureSettings,
    colorbar_label: str = "",
) -> Figure:
    """One panel per case (FPs then FNs): the model's input, its heatmap when given, and the
    lung contour when its mask is known."""
    if not len(cases) == len(images) == len(masks) or not len(cases):
        raise ValueError(f"failure_figure: {len(cases)} cases, {len(images)} images, "
                         f"{len(masks)} masks; expected as many, at least one")  # fmt: skip
    columns = min(settings.columns, len(cases))
    rows = math.ceil(len(cases) / columns)
    figure = Figure(figsize=(4.2 * columns, 4.6 * rows + 0.6), layout="constrained")
    figure.suptitle(title, fontsize=10)
    for position, case in enumerate(cases.itertuples(index=False)):
        axes = figure.add_subplot(rows, columns, position + 1)
        name = Path(case.path).name
        text = f"{KINDS[case.kind]} #{case.rank}\n" + heatmap_title(
            case.prob_covid, case.threshold, case.label, name
        )
        if heatmaps is None:
            axes.imshow(images[position], cmap="gray")
            axes.set_title(text, fontsize=9)
            axes.set_axis_off()
        else:
            draw_overlay(axes, images[position], heatmaps[position], text, settings.cmap,
                         settings.alpha, colorbar_label)  # fmt: skip
        mask = masks[position]
        if mask is not None and mask.any():
            axes.contour(mask.astype(float), levels=[0.5], colors=CONTOUR_COLOUR, linewidths=1)
    return figure


def failure_section(
    cases: pd.DataFrame, split: str, files: dict[str, str], how: str, missing_masks: int
) -> str:
    """The report.md section: what was chosen, how it was drawn, and the cases as a table."""
    counts = {kind: int((cases["kind"] == kind).sum()) for kind in KINDS}
    lines = ["", "## Failure cases", ""]
    if cases.empty:
        return "\n".join([*lines, f"No false positive or false negative on {split}.", ""])
    threshold, point = cases["threshold"].iloc[0], cases["operating_point"].iloc[0]
    lines += [
        f"{figure_title(split, threshold, point)}: {counts['FP']} false positives and "
        f"{counts['FN']} false negatives, in `{files['csv']}` and `{files['figure']}` ({how}; "
        f"lung contours in {CONTOUR_COLOUR}"
        + (f", none for {missing_masks} without a usable mask" if missing_masks else "")
        + ").",
        "",
        "| kind | rank | file | label | P(COVID) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {case.kind} | {case.rank} | {Path(case.path).name} | {CLASS_TITLES[case.label]} | "
        f"{case.prob_covid:.4f} |"
        for case in cases.itertuples(index=False)
    ]
    return "\n".join([*lines, ""])
