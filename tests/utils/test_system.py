"""Devices, CPUs and float32 arithmetic."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from deepcovid.utils.system import available_cpus, resolve_device, strict_float32


def test_available_cpus_are_those_this_process_may_use() -> None:
    assert available_cpus() == len(os.sched_getaffinity(0))


def test_cpu_is_resolved_by_name() -> None:
    assert resolve_device("cpu") == torch.device("cpu")


def test_strict_float32_turns_autocast_off() -> None:
    layer = torch.nn.Linear(4, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
        with strict_float32("cpu"):
            assert layer(torch.ones(1, 4)).dtype == torch.float32


@pytest.mark.parametrize("allowed", [True, False])
def test_strict_float32_turns_tf32_off_on_cuda_and_restores_it(allowed: bool) -> None:
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        with warnings.catch_warnings():  # autocast("cuda") warns on a machine without CUDA
            warnings.simplefilter("ignore")
            with strict_float32("cuda"):
                assert not torch.backends.cudnn.allow_tf32
                assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 is allowed
        assert torch.backends.cuda.matmul.allow_tf32 is allowed
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
