"""Integrity of a sample table: what it holds, which files are unreadable, and whether its
splits leak (the same image, a near copy of it, or the same patient in two splits).

Exact duplicates are found by content hash (sha256 of the file bytes), near-duplicates by a
256-bit difference hash (dHash, 16 x 16) of the decoded grayscale image: re-encoding, resizing
and small brightness changes move it by 0-13 bits, while distinct radiographs of the real
cxr-dev sample are at least 23 bits apart across its splits (8 x 8 dHash is too coarse for
chest X-rays: distinct radiographs collide at 0-1 bits).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from deepcovid import CLASS_NAMES
from deepcovid.data.io import DICOM_SUFFIXES, load_image
from deepcovid.data.splits import patients_in_several_splits
from deepcovid.data.validate import default_workers, problem
from deepcovid.utils.files import printable, sha256_of, write_json_atomic

log = logging.getLogger(__name__)
HASH_SIZE = 16
MAX_DISTANCE = 16  # bits of 256: re-encodes are at <= 13, distinct cxr-dev images at >= 23
ON_LEAK = ("error", "warn")


class DataLeakError(ValueError):
    """The splits share images or patients; the message lists them and the fix."""


@dataclass
class FileFacts:
    """What one file is: content hash, container mode and size, perceptual hash, problem."""

    sha256: str | None = None
    mode: str | None = None
    width: int | None = None
    height: int | None = None
    dhash: np.ndarray | None = None
    problem: str | None = None


def header(path: str | Path) -> tuple[str, int, int]:
    """(mode, width, height) from the file header, without decoding the pixels."""
    if Path(path).suffix.lower() in DICOM_SUFFIXES:
        import pydicom

        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        mode = f"{dataset.PhotometricInterpretation}/{dataset.BitsStored}bit"
        return mode, int(dataset.Columns), int(dataset.Rows)
    with Image.open(path) as image:
        return image.mode, image.width, image.height


def dhash(image: Image.Image, size: int = HASH_SIZE) -> np.ndarray:
    """Difference hash: is each pixel of a (size+1) x size thumbnail brighter than its right
    neighbour; ``size * size`` bits packed into uint64 words."""
    thumb = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR))
    bits = thumb[:, 1:].astype(np.int16) > thumb[:, :-1]
    return np.packbits(bits.ravel()).view(np.uint64)


def inspect_file(path: str, decode: bool, hash_size: int = HASH_SIZE) -> FileFacts:
    """Facts about one file; ``decode`` also decodes it (unreadable check, perceptual hash)."""
    facts = FileFacts()
    try:
        facts.sha256 = sha256_of(Path(path))
        facts.mode, facts.width, facts.height = header(path)
    except Exception as error:  # any header failure is reported, not raised
        facts.problem = f"{type(error).__name__}: {error}"
    if decode:
        facts.problem = problem(path)
        if facts.problem is None:
            facts.dhash = dhash(load_image(path), hash_size)
    return facts


def inspect_files(
    paths: Sequence[str], decode: bool, hash_size: int = HASH_SIZE, workers: int | None = None
) -> list[FileFacts]:
    """:func:`inspect_file` over many files in parallel threads, in input order."""
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        return list(pool.map(lambda p: inspect_file(p, decode, hash_size), paths))


def split_names(table: pd.DataFrame) -> pd.Series:
    """Each row's split, ``none`` where unset."""
    return table["split"].astype(object).where(table["split"].notna(), "none").astype(str)


def exact_duplicates(table: pd.DataFrame, digests: Sequence[str | None]) -> list[dict[str, Any]]:
    """Groups of byte-identical files that sit in more than one split."""
    frame = pd.DataFrame({"path": table["path"], "split": split_names(table), "sha": digests})
    groups = []
    for sha, rows in frame.dropna(subset=["sha"]).groupby("sha", sort=True):
        if rows["split"].nunique() > 1:
            paths = {s: sorted(map(printable, r["path"])) for s, r in rows.groupby("split")}
            groups.append({"sha256": sha, "paths": paths})
    return groups


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between every row of ``a`` and every row of ``b`` (packed uint64)."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=-1)


def near_duplicates(
    table: pd.DataFrame, hashes: Sequence[np.ndarray | None], max_distance: int
) -> list[dict[str, Any]]:
    """Pairs of images in different splits whose perceptual hashes differ by at most
    ``max_distance`` bits (byte-identical pairs included), closest first."""
    splits = split_names(table).to_numpy()
    paths = table["path"].to_numpy()
    known = np.array([h is not None for h in hashes], dtype=bool)
    pairs = []
    for first, second in combinations(sorted(set(splits[known])), 2):
        rows_a = np.flatnonzero(known & (splits == first))
        rows_b = np.flatnonzero(known & (splits == second))
        hashes_b = np.stack([hashes[i] for i in rows_b])
        for start in range(0, len(rows_a), 512):  # bounded memory: 512 x |b| distances a time
            chunk = rows_a[start : start + 512]
            distance = hamming(np.stack([hashes[i] for i in chunk]), hashes_b)
            for i, j in zip(*np.nonzero(distance <= max_distance), strict=True):
                pairs.append(
                    {
                        "distance": int(distance[i, j]),
                        first: printable(paths[chunk[i]]),
                        second: printable(paths[rows_b[j]]),
                    }
                )
    return sorted(pairs, key=lambda pair: pair["distance"])


def size_summary(facts: Sequence[FileFacts]) -> dict[str, dict[str, int]]:
    """Min / median / max of widths and heights."""
    summary = {}
    for axis in ("width", "height"):
        values = [getattr(f, axis) for f in facts if getattr(f, axis) is not None]
        if values:
            summary[axis] = {
                "min": int(np.min(values)),
                "median": int(np.median(values)),
                "max": int(np.max(values)),
            }
    return summary


def sample_counts(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Images per split, class and source."""
    frame = pd.DataFrame(
        {
            "split": split_names(table),
            "class": table["label"].map(lambda label: CLASS_NAMES[int(label)]),
            "source": table["source"].astype(object).where(table["source"].notna(), "-"),
        }
    )
    counts = frame.groupby(["split", "class", "source"]).size().reset_index(name="images")
    return counts.to_dict(orient="records")


@dataclass
class DataReport:
    """The check's findings; ``unreadable`` / ``near_duplicates`` are None when not checked."""

    n_images: int
    counts: list[dict[str, Any]]
    modes: dict[str, int]
    sizes: dict[str, dict[str, int]]
    exact_duplicates: list[dict[str, Any]]
    patients_in_several_splits: dict[str, list[str]]
    unreadable: dict[str, str] | None = None
    near_duplicates: list[dict[str, Any]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def leaks(self) -> dict[str, int]:
        """Number of leaks of each kind, only the kinds found."""
        found = {
            "exact_duplicates": len(self.exact_duplicates),
            "near_duplicates": len(self.near_duplicates or []),
            "patients_in_several_splits": len(self.patients_in_several_splits),
        }
        return {kind: n for kind, n in found.items() if n}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"leaks": self.leaks}


def build_report(
    table: pd.DataFrame,
    decode: bool = True,
    max_distance: int = MAX_DISTANCE,
    hash_size: int = HASH_SIZE,
    workers: int | None = None,
) -> DataReport:
    """Check a sample table. ``decode=False`` is the fast path (content hashes, headers and
    patients only: no unreadable-file or near-duplicate search)."""
    table = table.reset_index(drop=True)
    facts = inspect_files(table["path"].tolist(), decode, hash_size, workers)
    modes = pd.Series([f.mode or "unreadable" for f in facts]).value_counts()
    unreadable = None
    near = None
    if decode:
        unreadable = {
            printable(p): f.problem for p, f in zip(table["path"], facts, strict=True) if f.problem
        }
        near = near_duplicates(table, [f.dhash for f in facts], max_distance)
    return DataReport(
        n_images=len(table),
        counts=sample_counts(table),
        modes={str(mode): int(n) for mode, n in modes.items()},
        sizes=size_summary(facts),
        exact_duplicates=exact_duplicates(table, [f.sha256 for f in facts]),
        patients_in_several_splits=patients_in_several_splits(table),
        unreadable=unreadable,
        near_duplicates=near,
        settings={"decode": decode, "max_distance": max_distance, "hash_size": hash_size},
    )


def leak_message(report: DataReport, limit: int = 20) -> str:
    """What leaks, with examples and the fix."""
    lines = [f"the splits leak: {report.leaks}"]
    for group in report.exact_duplicates[:limit]:
        lines.append(f"  identical files: {group['paths']}")
    for pair in (report.near_duplicates or [])[:limit]:
        lines.append(f"  near-duplicates: {pair}")
    for patient, splits in list(report.patients_in_several_splits.items())[:limit]:
        lines.append(f"  patient {patient} in {splits}")
    lines.append(
        "Fix: remove the copies (or move them to one split) and keep each patient in one split; "
        "or run anyway with check_data.on_leak=warn (results will be optimistic)."
    )
    return "\n".join(lines)


def check_before_fit(
    table: pd.DataFrame,
    output_path: str | Path,
    decode: bool = False,
    max_distance: int = MAX_DISTANCE,
    on_leak: str = "error",
) -> DataReport:
    """The training-time check: build the report, write it as JSON, stop (or warn) on a leak."""
    if on_leak not in ON_LEAK:
        raise ValueError(f"check_data.on_leak={on_leak!r}; choose one of {list(ON_LEAK)}")
    report = build_report(table, decode=decode, max_distance=max_distance)
    write_json_atomic(report.to_dict(), output_path)
    log.info("data check (%d images) written to %s", report.n_images, output_path)
    if report.leaks:
        if on_leak == "error":
            raise DataLeakError(leak_message(report))
        log.warning(leak_message(report))
    return report
