"""Atomic file writes: write a temporary file beside the target, flush it to disk, rename.

A crash (even SIGKILL or power loss) at any moment leaves either the old file or the new one
at the target path, never a truncated mix: ``os.replace`` within one directory is atomic on
POSIX, and the temporary file is fsynced before the rename.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; once the block has written it, move it into
    place atomically. On error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def write_json_atomic(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return Path(path)
