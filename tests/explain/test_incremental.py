"""Incremental occlusion: exact (equal to Captum's and to the plain path) while computing only
the part of each early feature map that a window changes; refused, and replaced by the plain
path under ``auto``, where it does not apply."""

import pytest
import torch
from torch import nn

from deepcovid.explain import occlusion
from deepcovid.explain.grid import OcclusionGrid
from deepcovid.explain.incremental import IncrementalRunner, IncrementalUnsupportedError
from deepcovid.explain.occlusion import make_runner, occluded_scores
from deepcovid.explain.plain import PlainRunner
from tests.explain.captum_reference import TOLERANCE, captum, paper_model, toy_model


@pytest.mark.parametrize("full_fraction", [0.0, 0.3, 1.0])
def test_incremental_is_exact_whichever_layers_go_full(full_fraction):
    model = toy_model(1)
    x = torch.randn(2, 3, 45, 38)
    baseline = torch.randn(1, 3, 45, 38)  # a per-pixel baseline
    expected = captum(model, x, (9, 6), (4, 5), baseline)
    got = occlusion(model, x, (9, 6), (4, 5), baseline, 7, "incremental", full_fraction)
    assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_incremental_equals_plain_on_paper_backbones(name):
    model = paper_model(name)
    x = torch.randn(1, 3, 80, 80)
    plain = occlusion(model, x, 16, 8, batch_size=32, method="plain")
    incremental = occlusion(model, x, 16, 8, batch_size=32, method="incremental")
    assert plain.abs().max() > 1e-4
    assert torch.allclose(incremental, plain, atol=TOLERANCE, rtol=0)


def test_incremental_computes_only_part_of_the_early_maps():
    model = paper_model("resnet18")
    x = torch.randn(1, 3, 96, 96)
    grid = OcclusionGrid.create((96, 96), 16, 8)
    runner = IncrementalRunner(model, grid, profile=True)
    plain = PlainRunner(model, grid)
    with torch.inference_mode():
        runner.start(x, torch.zeros_like(x))
        plain.start(x, torch.zeros_like(x))
        positions = grid.positions()
        got = occluded_scores(runner, positions, 16)
        expected = occluded_scores(plain, positions, 16)
    assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)
    share = {block: computed / nodes for block, (_, computed, nodes) in runner.account.items()}
    assert share["conv1"] < 0.1 and share["layer1"] < 0.3  # a patch, not the whole map
    assert share["layer4"] == 1.0  # the receptive field covers everything by then


def test_resnet18_at_paper_resolution_equals_captum():
    model = paper_model("resnet18")
    x = torch.randn(1, 3, 224, 224)
    window, stride = 64, 40  # few windows keep this quick; geometry as in the benchmark
    expected = captum(model, x, window, stride)
    got = occlusion(model, x, window, stride, method="incremental")
    assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)


class DataDependent(nn.Module):
    """Python control flow on the input's shape: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x).mean((1, 2, 3))
        return y.sigmoid() if x.shape[-1] % 2 else y.tanh()


class InPlaceAlias(nn.Module):
    """An in-place ReLU on a tensor that another op reads afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        z = self.relu(y)
        return (z + y).mean((1, 2, 3))


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (DataDependent().eval(), "cannot trace"),
        (InPlaceAlias().eval(), "in place"),
        (lambda batch: batch.mean((1, 2, 3)), "nn.Module"),
    ],
)
def test_auto_falls_back_to_plain_where_incremental_does_not_apply(model, reason):
    grid = OcclusionGrid.create((12, 12), 4, 4)
    with pytest.raises(IncrementalUnsupportedError, match=reason):
        make_runner(model, grid, "incremental")
    assert isinstance(make_runner(model, grid, "auto"), PlainRunner)
    x = torch.randn(2, 3, 12, 12)
    assert torch.allclose(occlusion(model, x, 4, 4), captum(model, x, 4, 4), atol=TOLERANCE, rtol=0)


def test_training_mode_is_never_incremental():
    grid = OcclusionGrid.create((12, 12), 4, 4)
    with pytest.raises(IncrementalUnsupportedError, match="training mode"):
        make_runner(toy_model().train(), grid, "incremental")
    assert isinstance(make_runner(toy_model().train(), grid, "auto"), PlainRunner)
