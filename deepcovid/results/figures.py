"""Figures of evaluation results: data in, a matplotlib Figure out (Agg, no pyplot state).

:func:`evaluation_figures` draws the figures of ``plots/`` from an evaluation and its
predictions. Saving or logging a figure is the caller's job
(:func:`deepcovid.utils.files.save_figure` writes a PNG atomically).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepcovid import CLASS_TITLES
from deepcovid.metrics.calibration import ReliabilityBins
from deepcovid.metrics.decision import DecisionCurve
from deepcovid.metrics.discrimination import Curve, precision_recall_curve, roc_curve
from deepcovid.metrics.operating_points import Counts
from deepcovid.metrics.summary import Evaluation, arrays
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.results.names import rule_name

SIZE = (5.0, 4.5)


def new_figure(size: tuple[float, float] = SIZE) -> tuple[Figure, object]:
    """A figure with one axes, drawn by the Agg canvas."""
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


UNIT = (-0.01, 1.01)  # both axes of ROC and PR plots: [0, 1] with room for the edges


def finish_roc_axes(axes, title: str) -> None:
    """The chance diagonal, labels, unit square and legend of a ROC plot."""
    axes.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    axes.set(xlabel="1 − specificity", ylabel="sensitivity", xlim=UNIT, ylim=UNIT, title=title)
    axes.set_aspect("equal")
    axes.legend(loc="lower right", fontsize="small")


def roc_figure(
    curves: Mapping[str, Curve],
    points: Sequence[tuple[str, float, float]] = (),
    title: str = "ROC curve",
) -> Figure:
    """ROC curves (legend = mapping keys) with optional marked points (label, 1 - spec, sens)."""
    figure, axes = new_figure()
    for label, curve in curves.items():
        axes.plot(curve.x, curve.y, lw=1.5, label=label)  # linear between points, as AUROC
    for label, fpr, tpr in points:
        axes.plot([fpr], [tpr], marker="o", ls="none", label=label)
    finish_roc_axes(axes, title)
    return figure


def roc_band_figure(by_model: Mapping[str, Sequence[Curve]], title: str = "ROC curves") -> Figure:
    """Per model: its one ROC curve, or its runs' mean sensitivity at each 1 − specificity
    (curves interpolated on a common grid) with the band between their minimum and maximum."""
    figure, axes = new_figure()
    grid = np.linspace(0.0, 1.0, 201)
    for model, curves in by_model.items():
        if len(curves) == 1:
            axes.plot(curves[0].x, curves[0].y, lw=1.5, label=model)
            continue
        tpr = np.stack([np.interp(grid, c.x, c.y) for c in curves])
        tpr[:, 0] = 0.0  # every curve starts at (0, 0); interp would take the top of its step
        (line,) = axes.plot(
            grid, tpr.mean(axis=0), lw=1.5, label=f"{model} (mean of {len(curves)})"
        )
        axes.fill_between(grid, tpr.min(axis=0), tpr.max(axis=0), color=line.get_color(), alpha=0.2)
    finish_roc_axes(axes, title)
    return figure


def forest_figure(
    rows: Sequence[tuple[str, float, tuple[float | None, float | None]]],
    title: str,
) -> Figure:
    """One row per (label, AUROC, interval), top to bottom; a row without bounds is a point."""
    figure, axes = new_figure((6.0, 1.0 + 0.35 * max(len(rows), 1)))
    for position, (_, value, (low, high)) in enumerate(rows):
        y = len(rows) - 1 - position
        if low is not None and high is not None:
            axes.plot([low, high], [y, y], color="black", lw=1.2)
        axes.plot([value], [y], marker="s", color="black", ls="none")
    axes.axvline(0.5, ls=":", color="grey", lw=1)
    axes.set_yticks(range(len(rows)), [row[0] for row in reversed(rows)], fontsize="small")
    axes.set(xlabel="AUROC", xlim=UNIT, title=title)
    return figure


def pr_figure(
    curves: Mapping[str, Curve], prevalence: float | None = None, title: str = "Precision-recall"
) -> Figure:
    """Precision-recall curves; ``prevalence`` draws the no-skill line."""
    figure, axes = new_figure()
    for label, curve in curves.items():
        axes.plot(curve.x, curve.y, lw=1.5, label=label, drawstyle="steps-post")
    if prevalence is not None:
        axes.axhline(prevalence, ls=":", color="grey", lw=1, label=f"prevalence {prevalence:.2f}")
    axes.set(xlabel="recall (sensitivity)", ylabel="precision", xlim=UNIT, ylim=UNIT, title=title)
    axes.legend(loc="lower left", fontsize="small")
    return figure


def confusion_matrix_figure(counts: Counts, threshold: float) -> Figure:
    """A 2×2 confusion matrix (rows true, columns called; non-COVID first) with counts."""
    figure, axes = new_figure((4.2, 3.8))
    matrix = counts.matrix()
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        axes.text(column, row, str(count), ha="center", va="center", color="white" if dark else "k")
    axes.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=CLASS_TITLES,
        yticklabels=CLASS_TITLES,
        xlabel=f"called (P(COVID) ≥ {threshold:g})",
        ylabel="true class",
        title="Confusion matrix",
    )
    return figure


def score_histogram_figure(
    label: np.ndarray, prob_covid: np.ndarray, thresholds: Sequence[float] = (), n_bins: int = 20
) -> Figure:
    """Histograms of P(COVID) per true class, each normalised to its class size (COVID is
    usually the rare class), with vertical lines at ``thresholds``."""
    figure, axes = new_figure((6.0, 3.8))
    label, prob_covid = np.asarray(label), np.asarray(prob_covid)
    edges = np.linspace(0, 1, n_bins + 1)
    for value, name in enumerate(CLASS_TITLES):
        scores = prob_covid[label == value]
        weights = np.full(len(scores), 1.0 / max(len(scores), 1))
        axes.hist(scores, bins=edges, weights=weights, alpha=0.6, label=f"{name} (n={len(scores)})")
    for threshold in thresholds:
        axes.axvline(threshold, ls="--", color="k", lw=1)
    axes.set(
        xlabel="P(COVID)", ylabel="fraction of the class", xlim=(0, 1), title="Scores by true class"
    )
    axes.legend(fontsize="small")
    return figure


def reliability_figure(bins: ReliabilityBins, ece: float | None = None) -> Figure:
    """Observed COVID fraction against mean P(COVID) per bin, with the diagonal of perfect
    calibration and the image count per bin below."""
    figure = Figure(figsize=(5.0, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    filled = bins.count > 0
    top.plot([0, 1], [0, 1], ls=":", color="grey", lw=1, label="perfect calibration")
    top.plot(bins.mean_prob_covid[filled], bins.fraction_covid[filled], marker="o", label="model")
    title = "Reliability" if ece is None else f"Reliability (ECE {ece:.3f})"
    top.set(ylabel="fraction COVID", ylim=(-0.01, 1.01), title=title)
    top.legend(loc="upper left", fontsize="small")
    widths = bins.upper - bins.lower
    bottom.bar(bins.lower, bins.count, width=widths, align="edge", edgecolor="k", lw=0.5)
    bottom.set(xlabel="P(COVID)", ylabel="images", xlim=(0, 1))
    return figure


def decision_curve_figure(
    curves: Mapping[str, DecisionCurve], title: str = "Decision curve"
) -> Figure:
    """Net benefit of each model (legend = mapping keys, all on the same images) with the
    treat-all and treat-none references; Agg canvas, no pyplot state."""
    if not curves:
        raise ValueError("decision_curve_figure needs at least one curve")
    first = next(iter(curves.values()))
    for name, curve in curves.items():
        same_grid = np.array_equal(curve.threshold, first.threshold)
        if not same_grid or curve.prevalence != first.prevalence or curve.n != first.n:
            raise ValueError(f"curve {name!r} is not on the same images and thresholds")
    figure, axes = new_figure()
    for name, curve in curves.items():
        axes.plot(curve.threshold, curve.model, lw=1.5, label=name)
    axes.plot(first.threshold, first.treat_all, ls="--", color="grey", lw=1, label="treat all")
    axes.plot(first.threshold, first.treat_none, ls=":", color="black", lw=1, label="treat none")
    top = max(first.prevalence, *(float(c.model.max()) for c in curves.values()))
    axes.set(
        xlabel="threshold probability",
        ylabel="net benefit",
        xlim=(0.0, 1.0),
        ylim=(-0.1 * max(top, 0.01), 1.05 * max(top, 0.01)),
        title=f"{title} (prevalence {first.prevalence:.2f}, n = {first.n})",
    )
    axes.legend(loc="upper right", fontsize="small")
    return figure


def unavailable_figure(title: str, reason: str) -> Figure:
    """A placeholder that says why a figure cannot be drawn (e.g. one class only)."""
    figure, axes = new_figure()
    axes.text(0.5, 0.5, f"undefined:\n{reason}", ha="center", va="center", wrap=True)
    axes.set(title=title, xticks=[], yticks=[])
    return figure


def curve_figure(
    make_curve: Callable[[np.ndarray, np.ndarray], Curve],
    draw: Callable[[Curve], Figure],
    title: str,
    frame: pd.DataFrame,
) -> Figure:
    """``draw(curve)``, or a placeholder naming why the curve is undefined."""
    try:
        return draw(make_curve(*arrays(frame)))
    except UndefinedMetric as reason:
        return unavailable_figure(title, str(reason))


def evaluation_figures(evaluation: Evaluation, frame: pd.DataFrame) -> dict[str, Figure]:
    """The figures of ``plots/``: ROC (with the val-chosen points), PR, confusion matrix at the
    model's threshold, score histogram, reliability diagram and decision curve."""
    label, prob = arrays(frame)
    threshold = evaluation.threshold
    chosen = [p for p in evaluation.chosen_points if p.threshold is not None]
    marks = [
        (f"{rule_name(p)} ({p.threshold:.3g})", 1 - p.specificity, p.sensitivity)
        for p in chosen
        if p.specificity is not None and p.sensitivity is not None
    ]
    auroc = "n/a" if evaluation.auroc is None else f"{evaluation.auroc:.3f}"
    ap = "n/a" if evaluation.average_precision is None else f"{evaluation.average_precision:.3f}"
    return {
        "roc": curve_figure(
            roc_curve, lambda c: roc_figure({f"AUROC {auroc}": c}, marks), "ROC curve", frame
        ),
        "pr": curve_figure(
            precision_recall_curve,
            lambda c: pr_figure({f"AP {ap}": c}, label.mean()),
            "Precision-recall",
            frame,
        ),
        "confusion_matrix": confusion_matrix_figure(
            evaluation.point_at(threshold).counts, threshold
        ),
        "score_histogram": score_histogram_figure(
            label, prob, [threshold, *[p.threshold for p in chosen]]
        ),
        "reliability": reliability_figure(evaluation.calibration.bins, evaluation.calibration.ece),
        "decision_curve": unavailable_figure(
            "Decision curve", evaluation.undefined["decision_curve"]
        )
        if evaluation.decision_curve is None
        else decision_curve_figure({"model": evaluation.decision_curve}),
    }
