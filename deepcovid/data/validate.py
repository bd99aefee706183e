"""Find the files that cannot be used as images: decode every file once, in parallel threads.

Decoding (not just opening) is what catches truncated PNG/JPEG files, text files named
``.png``, empty files and broken DICOMs before training starts, so a bad file is reported
with all the others up front instead of crashing an epoch half-way through.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deepcovid.data.io import UnreadableImageError, load_image
from deepcovid.utils.files import printable

NON_UTF8_NAME = (
    "the file name is not valid UTF-8, so it cannot be written to CSV/JSON results; rename "
    "the file (e.g. `convmv -f latin1 -t utf8 --notest FILE`)"
)


class BadFilesError(ValueError):
    """Image files that cannot be used; the message names every one of them and the fix."""


def default_workers() -> int:
    """Threads for decoding: image decoders release the GIL, so a few more than the cores."""
    return min(32, (os.cpu_count() or 1) + 4)


def problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be used as an image (missing, empty, undecodable, non-UTF-8 name,
    over the pixel limit), or None when it decodes."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return NON_UTF8_NAME
    try:
        load_image(text)
    except UnreadableImageError as error:
        return str(error).removeprefix(f"{text}: ")
    return None


def find_unreadable(paths: Iterable[str | Path], workers: int | None = None) -> dict[str, str]:
    """``{path: reason}`` for every file among ``paths`` that cannot be decoded, in input order."""
    paths = [str(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        reasons = list(pool.map(problem, paths))
    return {path: reason for path, reason in zip(paths, reasons, strict=True) if reason}


def describe(bad: dict[str, str]) -> str:
    """One line per bad file: ``path: reason`` (printable)."""
    return "\n".join(f"  {printable(path)}: {reason}" for path, reason in bad.items())
