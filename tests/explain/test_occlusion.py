"""Occlusion equals Captum's, by both the plain and the incremental path; the path chosen by
``method`` and the device."""

import pytest
import torch

from deepcovid.explain import occlusion
from deepcovid.explain.grid import OcclusionGrid
from deepcovid.explain.occlusion import make_runner
from deepcovid.explain.plain import PlainRunner
from tests.explain.captum_reference import TOLERANCE, captum, toy_model

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


def test_any_callable_and_any_batch_size():
    weights = torch.randn(3, 17, 13)
    model = lambda batch: (batch * weights).sum((1, 2, 3)).tanh()  # noqa: E731
    x = torch.randn(2, 3, 17, 13)
    expected = captum(model, x, (5, 4), (2, 3))
    for batch_size in (1, 4, 1000):
        got = occlusion(model, x, (5, 4), (2, 3), batch_size=batch_size)
        assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)


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
