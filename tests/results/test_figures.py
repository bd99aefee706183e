"""Figures as functions of data: what they draw, not only that they draw."""

from __future__ import annotations

import io

import numpy as np
import pytest

from deepcovid.metrics.decision import decision_curve
from deepcovid.results.figures import decision_curve_figure


def test_decision_curve_figure_draws_every_curve() -> None:
    label = np.array([0, 1, 0, 1, 0, 1])
    curves = {
        "model A": decision_curve(label, np.array([0.1, 0.8, 0.3, 0.7, 0.2, 0.9])),
        "model B": decision_curve(label, np.array([0.4, 0.6, 0.5, 0.5, 0.3, 0.6])),
    }
    figure = decision_curve_figure(curves)
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["model A", "model B", "treat all", "treat none"]
    np.testing.assert_array_equal(lines[0].get_ydata(), curves["model A"].model)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
    other = {"other": decision_curve(label[:4], np.array([0.1, 0.8, 0.3, 0.7]))}
    with pytest.raises(ValueError, match="same images"):
        decision_curve_figure({**curves, **other})


def test_roc_band_is_the_mean_and_range_of_the_runs() -> None:
    from deepcovid.metrics.discrimination import roc_curve
    from deepcovid.results.figures import roc_band_figure

    label = np.array([0, 0, 1, 1])
    perfect = roc_curve(label, np.array([0.1, 0.2, 0.8, 0.9]))
    inverse = roc_curve(label, np.array([0.9, 0.8, 0.2, 0.1]))
    figure = roc_band_figure({"two runs": [perfect, inverse], "one run": [perfect]})
    axes = figure.axes[0]
    mean, single = axes.get_lines()[:2]
    assert mean.get_label() == "two runs (mean of 2)" and single.get_label() == "one run"
    x, y = mean.get_xdata(), mean.get_ydata()
    assert y[0] == 0.0 and y[-1] == 1.0
    assert y[np.searchsorted(x, 0.5)] == pytest.approx(0.5)  # (1 + 0) / 2 halfway
    (band,) = axes.collections
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (low, high) == (0.0, 1.0)


def test_forest_rows_top_to_bottom_with_intervals() -> None:
    from deepcovid.results.figures import forest_figure

    figure = forest_figure([("a", 0.9, (0.8, 0.95)), ("b", 0.6, (None, None))], "AUROC")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["b", "a"]
    interval, point_a, point_b = axes.get_lines()[:3]
    np.testing.assert_array_equal(interval.get_xdata(), [0.8, 0.95])
    assert point_a.get_ydata()[0] == 1 and point_b.get_ydata()[0] == 0
