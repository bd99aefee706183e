"""What a sample table holds, which files cannot be used, and whether its splits leak: the same
image, a near copy of it, or the same patient in two splits. Also identical content under both
labels (one file listed twice, a symlink, or a copy: within a split or across splits), and the
radiographs too small or too elongated to be chest X-rays.

Everything comes from the facts of one read of each file (:mod:`deepcovid.data.cache`): exact
duplicates from the sha256 of the bytes, near-duplicates from a 256-bit difference hash (dHash,
16 x 16) of the decoded image. Re-encoding, resizing and small brightness changes move the dHash
by 0-13 bits, while distinct radiographs of the real cxr-dev sample are at least 23 bits apart
across its splits (8 x 8 dHash is too coarse for chest X-rays: distinct radiographs collide at
0-1 bits).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from deepcovid import CLASS_NAMES
from deepcovid.data.cache import FileFacts
from deepcovid.data.settings import MAX_DISTANCE, OnLeak
from deepcovid.data.splits import patients_in_several_splits
from deepcovid.utils.files import printable

log = logging.getLogger(__name__)
# A chest radiograph is at least this many pixels on its shorter side, and not more elongated
MIN_SHORT_SIDE = 64
MAX_ASPECT_RATIO = 3.0


class DataLeakError(ValueError):
    """The splits share images or patients; the message lists them and the fix."""


def split_names(table: pd.DataFrame) -> pd.Series:
    """Each row's split, ``none`` where unset."""
    return table["split"].astype(object).where(table["split"].notna(), "none").astype(str)


def exact_duplicates(table: pd.DataFrame, digests: list[str | None]) -> list[dict[str, Any]]:
    """Groups of byte-identical files that sit in more than one split."""
    frame = pd.DataFrame({"path": table["path"], "split": split_names(table), "sha": digests})
    groups = []
    for sha, rows in frame.dropna(subset=["sha"]).groupby("sha", sort=True):
        if rows["split"].nunique() > 1:
            paths = {s: sorted(map(printable, r["path"])) for s, r in rows.groupby("split")}
            groups.append({"sha256": sha, "paths": paths})
    return groups


def conflicting_labels(table: pd.DataFrame, digests: list[str | None]) -> list[dict[str, Any]]:
    """Groups of byte-identical files (one file under two names, a symlink, or a copy; in one
    split or several) that are listed with both labels: each file with its label and split."""
    frame = pd.DataFrame(
        {
            "path": table["path"],
            "label": table["label"],
            "split": split_names(table),
            "sha": digests,
        }
    )
    groups = []
    for sha, rows in frame.dropna(subset=["sha"]).groupby("sha", sort=True):
        if rows["label"].nunique() > 1:
            files = [
                {"path": printable(path), "label": CLASS_NAMES[int(label)], "split": split}
                for path, label, split, _ in rows.itertuples(index=False)
            ]
            groups.append({"sha256": sha, "files": files})
    return groups


def hash_words(hashes: list[str]) -> np.ndarray:
    """Hex dHashes as rows of uint64 words."""
    return np.stack([np.frombuffer(bytes.fromhex(h), dtype=np.uint8) for h in hashes]).view(
        np.uint64
    )


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between every row of ``a`` and every row of ``b`` (packed uint64)."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(axis=-1)


def near_duplicates(
    table: pd.DataFrame, hashes: list[str | None], max_distance: int
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
        words_b = hash_words([hashes[i] for i in rows_b])
        for start in range(0, len(rows_a), 512):  # bounded memory: 512 x |b| distances a time
            chunk = rows_a[start : start + 512]
            distance = hamming(hash_words([hashes[i] for i in chunk]), words_b)
            for i, j in zip(*np.nonzero(distance <= max_distance), strict=True):
                pairs.append(
                    {
                        "distance": int(distance[i, j]),
                        first: printable(paths[chunk[i]]),
                        second: printable(paths[rows_b[j]]),
                    }
                )
    return sorted(pairs, key=lambda pair: pair["distance"])


def implausible(path: str, facts: FileFacts) -> str | None:
    """Why an image that decodes is no plausible chest radiograph by its size, or None."""
    if facts.width is None or facts.height is None:
        return None
    short, long = sorted((facts.width, facts.height))
    if short < MIN_SHORT_SIDE:
        return f"{facts.width}x{facts.height} px: shorter side under {MIN_SHORT_SIDE} px"
    if long / short > MAX_ASPECT_RATIO:
        return f"{facts.width}x{facts.height} px: aspect ratio over {MAX_ASPECT_RATIO:g}"
    return None


def size_summary(facts: list[FileFacts]) -> dict[str, dict[str, int]]:
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
    """The check's findings; ``near_duplicates`` is None when the dHash was not computed."""

    n_images: int
    counts: list[dict[str, Any]]
    modes: dict[str, int]
    sizes: dict[str, dict[str, int]]
    unreadable: dict[str, str]
    implausible: dict[str, str]
    exact_duplicates: list[dict[str, Any]]
    conflicting_labels: list[dict[str, Any]]
    patients_in_several_splits: dict[str, list[str]]
    near_duplicates: list[dict[str, Any]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def leaks(self) -> dict[str, int]:
        """Number of leaks of each kind, only the kinds found."""
        found = {
            "conflicting_labels": len(self.conflicting_labels),
            "exact_duplicates": len(self.exact_duplicates),
            "near_duplicates": len(self.near_duplicates or []),
            "patients_in_several_splits": len(self.patients_in_several_splits),
        }
        return {kind: n for kind, n in found.items() if n}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"leaks": self.leaks}


def leak_report(
    table: pd.DataFrame,
    facts: Mapping[str, FileFacts],
    near: bool = False,
    max_distance: int = MAX_DISTANCE,
) -> DataReport:
    """Check a sample table from its files' facts; ``near`` also looks for near-duplicates
    (the facts must then carry dHashes)."""
    table = table.reset_index(drop=True)
    rows = [facts[path] for path in table["path"]]
    digests = [f.sha256 for f in rows]
    modes = pd.Series([f.container_mode or "unreadable" for f in rows]).value_counts()
    odd = ((path, implausible(path, f)) for path, f in zip(table["path"], rows, strict=True))
    return DataReport(
        n_images=len(table),
        counts=sample_counts(table),
        modes={str(mode): int(n) for mode, n in modes.items()},
        sizes=size_summary(rows),
        unreadable={
            printable(p): f.problem for p, f in zip(table["path"], rows, strict=True) if f.problem
        },
        implausible={printable(p): why for p, why in odd if why},
        exact_duplicates=exact_duplicates(table, digests),
        conflicting_labels=conflicting_labels(table, digests),
        patients_in_several_splits=patients_in_several_splits(table),
        near_duplicates=near_duplicates(table, [f.dhash for f in rows], max_distance)
        if near
        else None,
        settings={"near_duplicates": near, "max_distance": max_distance},
    )


def leak_message(report: DataReport, limit: int = 20) -> str:
    """What leaks, with examples and the fix."""
    lines = [f"the splits leak: {report.leaks}"]
    for group in report.conflicting_labels[:limit]:
        listed = ", ".join(f"{f['path']} ({f['label']}, {f['split']})" for f in group["files"])
        lines.append(f"  identical content, both labels: {listed}")
    for group in report.exact_duplicates[:limit]:
        lines.append(f"  identical files: {group['paths']}")
    for pair in (report.near_duplicates or [])[:limit]:
        lines.append(f"  near-duplicates: {pair}")
    for patient, splits in list(report.patients_in_several_splits.items())[:limit]:
        lines.append(f"  patient {patient} in {splits}")
    lines.append(
        "Fix: give identical images one label (delete the wrongly labelled copy, link or "
        "manifest row), remove the copies (or move them to one split) and keep each patient in "
        "one split; or run anyway with data.on_leak=warn (results will be optimistic)."
    )
    return "\n".join(lines)


def enforce(report: DataReport, on_leak: OnLeak = OnLeak.error) -> None:
    """Stop (``on_leak=error``) or warn when the splits leak; warn about implausible images."""
    if report.implausible:
        listed = "\n".join(f"  {p}: {why}" for p, why in list(report.implausible.items())[:20])
        log.warning(
            "%d image(s) are implausible as chest radiographs (listed in data_check.json):\n%s",
            len(report.implausible),
            listed,
        )
    if report.leaks:
        if on_leak == "error":
            raise DataLeakError(leak_message(report))
        log.warning(leak_message(report))
