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
