"""Occlusion equals Captum's, by both the plain and the incremental path."""

import pytest
import torch
import torch.nn.functional as F
from captum.attr import Occlusion
from torch import nn

from deepcovid.explain import occlusion
from deepcovid.explain.grid import OcclusionGrid
from deepcovid.explain.incremental import IncrementalRunner, IncrementalUnsupportedError
from deepcovid.explain.occlusion import make_runner, occluded_scores
from deepcovid.explain.plain import PlainRunner
from deepcovid.explain.scoring import ProbCovid
from deepcovid.models.backbones import create_backbone

TOLERANCE = 1e-5


def captum(model, x, window, stride, baseline=0.0) -> torch.Tensor:
    window = (window, window) if isinstance(window, int) else window
    stride = (stride, stride) if isinstance(stride, int) else stride
    channels = x.shape[1]
    return Occlusion(model).attribute(
        x,
        sliding_window_shapes=(channels, *window),
        strides=(channels, *stride),
        baselines=baseline,
        perturbations_per_eval=8,
    )


class EveryOp(nn.Module):
    """Strided/dilated/grouped convs, eval BatchNorm, ceil-mode max pooling, padded average
    pooling, residual add, cat, scalar mul/sub, dropout, SiLU and an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 5, stride=2, padding=2)
        self.norm = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.branch = nn.Conv2d(8, 4, 1)
        self.smooth = nn.AvgPool2d(3, stride=1, padding=1)
        self.halve = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(12, 1)
        with torch.no_grad():
            self.norm.running_mean.normal_()
            self.norm.running_var.uniform_(0.5, 2.0)
            self.norm.weight.normal_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.relu(self.norm(self.stem(x))))
        z = torch.relu(self.dilated(y)) + y
        w = torch.cat([z, self.branch(z) * 0.5], dim=1)
        v = self.drop(F.silu(self.halve(self.smooth(w)) - 0.1))
        return torch.sigmoid(self.head(v.mean((2, 3))))[:, 0]


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return EveryOp().eval()


CASES = [  # size, window, stride: none divides evenly, last windows overhang the edge
    ((37, 29), (7, 5), (3, 2)),
    ((23, 31), 6, 4),
    ((20, 20), (20, 3), (1, 3)),
]


@pytest.mark.parametrize(("size", "window", "stride"), CASES)
@pytest.mark.parametrize("method", ["plain", "incremental"])
def test_equals_captum(size, window, stride, method):
    model = toy_model()
    x = torch.randn(3, 3, *size)
    expected = captum(model, x, window, stride, baseline=0.3)
    got = occlusion(model, x, window, stride, baseline=0.3, batch_size=5, method=method)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert expected.abs().max() > 1e-3  # a real signal, not all zeros
    assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("full_fraction", [0.0, 0.3, 1.0])
def test_incremental_is_exact_whichever_layers_go_full(full_fraction):
    model = toy_model(1)
    x = torch.randn(2, 3, 45, 38)
    baseline = torch.randn(1, 3, 45, 38)  # a per-pixel baseline
    expected = captum(model, x, (9, 6), (4, 5), baseline)
    got = occlusion(model, x, (9, 6), (4, 5), baseline, 7, "incremental", full_fraction)
    assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)


def test_any_callable_and_any_batch_size():
    weights = torch.randn(3, 17, 13)
    model = lambda batch: (batch * weights).sum((1, 2, 3)).tanh()  # noqa: E731
    x = torch.randn(2, 3, 17, 13)
    expected = captum(model, x, (5, 4), (2, 3))
    for batch_size in (1, 4, 1000):
        got = occlusion(model, x, (5, 4), (2, 3), batch_size=batch_size)
        assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)


def paper_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return ProbCovid(create_backbone(name, pretrained=False).net).eval()


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


def test_runs_under_inference_mode_without_gradients():
    model = toy_model()
    x = torch.randn(1, 3, 24, 24)
    with torch.inference_mode():
        got = occlusion(model, x, 8, 4)
    assert not got.requires_grad
    assert torch.allclose(got, captum(model, x, 8, 4), atol=TOLERANCE, rtol=0)


def test_bad_inputs_name_the_problem():
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="one score per image"):
        occlusion(lambda batch: batch.mean((2, 3)), x, 4, 4)
    with pytest.raises(ValueError, match="expected a batch"):
        occlusion(toy_model(), x[0], 4, 4)
    with pytest.raises(ValueError, match="larger than the image"):
        occlusion(toy_model(), x, 32, 4)
    with pytest.raises(ValueError, match="baseline"):
        occlusion(toy_model(), x, 4, 4, baseline=torch.zeros(5))
    with pytest.raises(ValueError, match="method"):
        occlusion(toy_model(), x, 4, 4, method="fast")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu():
    model = toy_model()
    x = torch.randn(2, 3, 30, 30)
    cpu = occlusion(model, x, 6, 3)
    gpu = occlusion(model.cuda(), x.cuda(), 6, 3)
    assert gpu.is_cuda and torch.allclose(gpu.cpu(), cpu, atol=TOLERANCE, rtol=0)


def test_auto_is_incremental_on_the_cpu_and_plain_on_a_gpu():
    grid = OcclusionGrid.create((24, 24), 8, 8)
    assert not isinstance(make_runner(toy_model(), grid, "auto"), PlainRunner)
    assert isinstance(make_runner(toy_model(), grid, "auto", device_type="cuda"), PlainRunner)
    assert not isinstance(
        make_runner(toy_model(), grid, "incremental", device_type="cuda"), PlainRunner
    )
