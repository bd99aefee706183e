"""What this process may use of the machine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (what SLURM, taskset or a container
    grant), not the machine's core count that ``os.cpu_count()`` reports."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows: no affinity API
        return os.cpu_count() or 1


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def strict_float32(device_type: str) -> Iterator[None]:
    """float32 arithmetic: autocast off and, on CUDA, no TF32 (cuDNN lets convolutions round
    their inputs to TF32's 10-bit mantissa by default, so the same weights scored the same
    image differently from run to run: by up to 1e-4 in P(COVID) on an H200)."""
    with torch.autocast(device_type, enabled=False):
        if device_type != "cuda":
            yield
            return
        saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
