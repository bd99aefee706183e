"""Files: atomic writes (JSON, CSV, text, PNG figures), content hashes, and flat names for
files written about many inputs.

An atomic write goes to a temporary file beside the target, is flushed to disk and renamed. A
crash (even SIGKILL or power loss) at any moment leaves either the old file or the new one at
the target path, never a truncated mix: ``os.replace`` within one directory is atomic on
POSIX, and the temporary file is fsynced before the rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

CHUNK = 1 << 20


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


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8), atomically."""
    with atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(data: Any, path: str | Path) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return write_text_atomic(json.dumps(data, indent=2, allow_nan=True) + "\n", path)


def write_csv_atomic(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV (no index), atomically."""
    with atomic_path(path) as partial:
        frame.to_csv(partial, index=False)
    return Path(path)


def save_figure(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write a matplotlib ``figure`` as a PNG, atomically."""
    with atomic_path(path) as partial:
        figure.savefig(partial, format="png", dpi=dpi)
    return Path(path)


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def common_folder(paths: list[Path]) -> Path:
    """The deepest folder holding every one of ``paths`` (resolved)."""
    return Path(os.path.commonpath([p.resolve().parent for p in paths])) if paths else Path()


def flat_name(path: Path, root: Path, keep_suffix: bool = True) -> str:
    """A flat name for files about ``path``, unique among inputs below ``root``: its path below
    ``root`` with ``__`` separators (``study1/IM1.dcm`` → ``study1__IM1.dcm``, or
    ``study1__IM1`` without the suffix); its name alone when it is not below ``root``."""
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        relative = Path(path.name)
    return "__".join((relative if keep_suffix else relative.with_suffix("")).parts)


def printable(path: str | Path) -> str:
    """``path`` as text that can always be printed or written (undecodable bytes escaped)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")
