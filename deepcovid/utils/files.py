"""Files: atomic writes (JSON, CSV, text, PNG figures), content hashes, and flat names for
files written about many inputs.

An atomic write goes to a temporary file beside the target, is flushed to disk and renamed. A
crash (even SIGKILL or power loss) at any moment leaves either the old file or the new one at
the target path, never a truncated mix: ``os.replace`` within one directory is atomic on
POSIX, and the temporary file is fsynced before the rename. A disk that fills up during the
write raises :class:`DiskFullError`, naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

CHUNK = 1 << 20
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """A write that ran out of disk space; the message names the file and what to do."""


def disk_full(path: Path, error: Exception) -> DiskFullError | None:
    """``error``, raised while writing ``path``, as a :class:`DiskFullError` when the disk is
    full: an OSError saying so, or a writer's own error (torch's C++ writers drop the errno)
    while less than :data:`CHUNK` is left free there. None when the disk is not full."""
    try:
        free: int | None = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    said = getattr(error, "errno", None) in DISK_FULL_ERRNOS
    if not said and (free is None or free >= CHUNK):
        return None
    left = "" if free is None else f"{free // 1024} KiB free in {printable(path.parent)}; "
    return DiskFullError(
        errno.ENOSPC,
        f"{printable(path)}: the disk is full ({left}{type(error).__name__}: {error}). "
        "The file was not written (an earlier version, if any, is intact). Free space there, "
        "or write elsewhere (hydra.run.dir=…, output_dir=…, data.cache_dir=…), and run again.",
    )


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; once the block has written it, move it into
    place atomically. On error the temporary file is removed and ``path`` is untouched; a full
    disk is a :class:`DiskFullError`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except Exception as error:
        full = disk_full(path, error)
        if full is None:
            raise
        raise full from error
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


def escape_part(part: str) -> str:
    """``part`` with ``%`` and every underscore that could be read as a separator (at either
    end, or two or more in a row) percent-encoded, so that ``__`` joins parts unambiguously."""
    part = part.replace("%", "%25")
    return re.sub(r"_{2,}|^_|_$", lambda found: "%5F" * len(found.group()), part)


def flat_name(path: Path, root: Path, keep_suffix: bool = True) -> str:
    """A flat name for files about ``path``, distinct for distinct inputs below ``root``: its
    path below ``root`` with ``__`` separators (``study1/IM1.dcm`` → ``study1__IM1.dcm``, or
    ``study1__IM1`` without the suffix); underscores that could be taken for a separator are
    escaped (a file ``study1__IM1.dcm`` → ``study1%5F%5FIM1.dcm``). Its name alone when it is
    not below ``root``."""
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        relative = Path(path.name)
    parts = (relative if keep_suffix else relative.with_suffix("")).parts
    return "__".join(escape_part(part) for part in parts)


def printable(path: str | Path) -> str:
    """``path`` as text that can always be printed or written (undecodable bytes escaped)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")
