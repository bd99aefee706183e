"""Atomic writes on a full disk: one error that names the file and what to do."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from deepcovid.utils import files
from deepcovid.utils.files import DiskFullError, atomic_path, write_csv_atomic

# torch.save's error when its C++ writer runs out of space (no errno, no file name)
TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="no /dev/full device")
def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    """The temporary file is made a link to /dev/full, where every write fails with ENOSPC."""
    target = tmp_path / "predictions" / "test.csv"
    write_csv_atomic(pd.DataFrame({"path": ["old.png"]}), target)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.symlink_to("/dev/full")
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(10_000)]})
    with pytest.raises(DiskFullError, match=rf"{target}: the disk is full .*Free space there"):
        write_csv_atomic(frame, target)
    assert pd.read_csv(target)["path"].tolist() == ["old.png"] and not partial.is_symlink()


def test_a_writer_error_without_errno_on_a_full_disk_is_named(tmp_path: Path, monkeypatch):
    """torch.save's C++ writer drops the errno: with (almost) no space left, it is still named
    as a full disk; with space left, its own error goes through unchanged."""
    target = tmp_path / "checkpoints" / "last.ckpt"
    for free, expected in ((0, DiskFullError), (1 << 30, RuntimeError)):
        usage = shutil.disk_usage(tmp_path)._replace(free=free)
        monkeypatch.setattr(files.shutil, "disk_usage", lambda _, usage=usage: usage)
        with pytest.raises(expected) as raised, atomic_path(target):
            raise RuntimeError(TORCH_FULL)
        assert (str(target) in str(raised.value)) == (expected is DiskFullError)
        assert not target.exists() and list(target.parent.iterdir()) == []
