"""What this process may use of the machine."""

from __future__ import annotations

import os

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
