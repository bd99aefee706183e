"""Coarse-to-fine drill-down: exact in its limits, close on smooth maps, fewer forward passes."""

import pytest
import torch

from deepcovid.explain import Drilldown, occlusion
from deepcovid.explain.drilldown import lattice


class CountingLinear:
    """A smooth linear score that counts the occluded copies it is asked about."""

    def __init__(self, size: int) -> None:
        grid = torch.linspace(-1, 1, size)
        bump = torch.exp(-((grid[:, None] - 0.3) ** 2 + (grid[None, :] + 0.2) ** 2) / 0.2)
        self.weights = bump.expand(3, size, size)
        self.copies = 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.copies += len(batch)
        return (batch * self.weights).mean((1, 2, 3))


def smooth_image(size: int) -> torch.Tensor:
    grid = torch.linspace(0, 3, size)
    return (torch.sin(grid[:, None]) * torch.cos(grid[None, :])).expand(1, 3, size, size)


def test_lattice_keeps_the_last_position():
    assert lattice(7, 2) == [0, 2, 4, 6]
    assert lattice(8, 3) == [0, 3, 6, 7]
    assert lattice(1, 4) == [0]


@pytest.mark.parametrize(("step", "refine_fraction"), [(1, 0.0), (2, 1.0), (3, 1.0)])
def test_exact_in_its_limits(step, refine_fraction):
    model = CountingLinear(40)
    x = torch.randn(2, 3, 40, 40)
    exact = occlusion(model, x, 8, 4)
    approximate = occlusion(model, x, 8, 4, drilldown=Drilldown(step, refine_fraction))
    assert torch.allclose(approximate, exact, atol=1e-6)


def test_close_on_a_smooth_map_with_a_third_of_the_passes():
    model = CountingLinear(64)
    x = smooth_image(64)
    exact = occlusion(model, x, 8, 4)
    windows = model.copies - 1  # minus the unoccluded pass
    model.copies = 0
    approximate = occlusion(model, x, 8, 4, drilldown=Drilldown(2, 0.1))
    assert model.copies - 1 < 0.4 * windows  # 1/4 on the lattice + 10 % of the rest
    error = (approximate - exact).abs().max() / exact.abs().max()
    assert error < 0.05


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="step"):
        Drilldown(step=0)
