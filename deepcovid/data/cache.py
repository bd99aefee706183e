"""Preprocessed image cache: decode, convert to 8-bit grayscale and shrink each image once.

Decoding multi-megapixel radiographs, not the network, limits training. :func:`open_cache`
stores the images of one split as grayscale uint8 with the short side shrunk to
``short_side`` (never enlarged), packed into one flat file that is read back through
``numpy.memmap``, plus a JSON index: per image its path, label, patient, source, original
size, sha256 content hash, file stat and place in the packed file.

- Reuse: a cache is named by its split and a digest of its source paths, so sweep jobs and
  later runs over the same split find it.
- Invalidation: a source whose mtime or size changed is hashed again; only images whose
  content changed are decoded again.
- Concurrency: builders take a file lock; files are written under temporary names and
  renamed; the index is written last and names the packed file it describes.
- Corruption: an index that does not parse, or a packed file of the wrong size or checksum,
  is rebuilt.

Imports only numpy, torch, torchvision, Pillow, tqdm and filelock (no pandas), so GPU
benchmarks can use it on bare machines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm

from deepcovid.data.io import load_image
from deepcovid.utils.files import sha256_of

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
CHUNK = 1 << 24
ENTRY_FIELDS = {
    "path",
    "label",
    "patient_id",
    "source",
    "width",
    "height",
    "sha256",
    "mtime_ns",
    "size",
    "offset",
    "cached_height",
    "cached_width",
}


class CacheError(RuntimeError):
    """A cache that cannot be read; the message says what to do."""


@dataclass(frozen=True)
class Source:
    """One image to cache: its file and the metadata the index records with it."""

    path: str
    label: int
    patient_id: str | None = None
    source: str | None = None


def shrink(path: str | Path, short_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``path`` to grayscale uint8 (H, W), short side shrunk to ``short_side``; also
    return the original (width, height).

    Uses the same antialiased resize as :class:`~deepcovid.data.transforms.EvalPreset`.
    """
    image = load_image(path)
    pixels = F.pil_to_tensor(image)
    if min(pixels.shape[-2:]) > short_side:
        pixels = F.resize(pixels, short_side, antialias=True)
    return pixels[0].numpy(), image.size


def file_stat(path: str | Path) -> tuple[int, int]:
    """(mtime in ns, size in bytes) of a file: the fast change check."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def crc32_of(path: Path) -> int:
    """CRC-32 of a file, read in chunks."""
    crc = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def cache_stem(name: str, sources: Sequence[Source], short_side: int) -> str:
    """File stem of a split's cache: its name plus a digest of its absolute source paths."""
    paths = [os.path.abspath(s.path) for s in sources]
    key = json.dumps([FORMAT_VERSION, short_side, paths]).encode()
    return f"{name}-{hashlib.sha256(key).hexdigest()[:16]}"


class ImageCache:
    """A split's cached images, read from the packed file through a lazily opened memmap.

    Picklable for DataLoader workers: each process opens its own memmap.
    """

    def __init__(self, data_path: Path, sources: Sequence[Source], index: dict[str, Any]) -> None:
        self.data_path = data_path
        self.images: list[dict[str, Any]] = index["images"]
        self.short_side: int = index["short_side"]
        self.places = {
            s.path: (e["offset"], e["cached_height"], e["cached_width"])
            for s, e in zip(sources, self.images, strict=True)
        }
        self._data: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.images)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}

    def data(self) -> np.memmap:
        """The packed file, memory-mapped read-only."""
        if self._data is None:
            try:
                self._data = np.memmap(self.data_path, dtype=np.uint8, mode="r")
            except FileNotFoundError as error:
                raise CacheError(
                    f"{self.data_path} vanished: another job rebuilt this cache because a "
                    "source image changed while this run was starting. Restart the run."
                ) from error
        return self._data

    def load(self, path: str) -> torch.Tensor:
        """The cached image of ``path`` as a uint8 tensor of shape (1, H, W)."""
        offset, height, width = self.places[path]
        pixels = np.array(self.data()[offset : offset + height * width])
        return torch.from_numpy(pixels).view(1, height, width)


def read_index(index_path: Path, short_side: int) -> dict[str, Any] | None:
    """The index at ``index_path`` if it and its packed file are intact, else None."""
    try:
        index = json.loads(index_path.read_text())
        data_path = index_path.parent / index["data_file"]
        intact = (
            index["version"] == FORMAT_VERSION
            and index["short_side"] == short_side
            and data_path.is_file()
            and data_path.stat().st_size == index["data_bytes"]
            and all(entry.keys() >= ENTRY_FIELDS for entry in index["images"])
            and crc32_of(data_path) == index["data_crc32"]
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("cache index %s is unreadable (%s): rebuilding", index_path, error)
        return None
    if not intact:
        log.warning("cache %s is incomplete or corrupt: rebuilding", index_path)
        return None
    return index


def cached_paths(cache_dir: str | Path) -> set[str]:
    """Absolute paths of the images cached in ``cache_dir`` whose file is unchanged (by mtime
    and size) since: they decoded then, so they decode now."""
    found = set()
    for index_path in Path(cache_dir).glob("*.json"):
        try:
            images = json.loads(index_path.read_text())["images"]
            for entry in images:
                if list(file_stat(entry["path"])) == [entry["mtime_ns"], entry["size"]]:
                    found.add(entry["path"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a corrupt index proves nothing; open_cache rebuilds it
    return found


def metadata(source: Source) -> dict[str, Any]:
    """The index fields that come from the sample table rather than the file."""
    return {
        "path": os.path.abspath(source.path),
        "label": int(source.label),
        "patient_id": None if source.patient_id is None else str(source.patient_id),
        "source": None if source.source is None else str(source.source),
    }


def is_fresh(index: dict[str, Any], sources: Sequence[Source]) -> bool:
    """Whether the index describes exactly ``sources`` and no source file changed (by stat)."""
    images = index["images"]
    if len(images) != len(sources):
        return False
    for source, entry in zip(sources, images, strict=True):
        if {k: entry[k] for k in metadata(source)} != metadata(source):
            return False
        try:
            if list(file_stat(source.path)) != [entry["mtime_ns"], entry["size"]]:
                return False
        except OSError:
            return False
    return True


def reusable(entry: dict[str, Any] | None, path: str) -> dict[str, Any] | None:
    """``entry``'s file facts, with the current stat, if ``path`` still has its content."""
    if entry is None:
        return None
    try:
        stat = list(file_stat(path))
    except OSError:
        return None  # decoding it says what is wrong
    if stat == [entry["mtime_ns"], entry["size"]]:
        return entry
    if sha256_of(Path(path)) != entry["sha256"]:
        return None
    return {**entry, "mtime_ns": stat[0], "size": stat[1]}


def file_facts(path: str, shrunk: tuple[np.ndarray, tuple[int, int]]) -> dict[str, Any]:
    """Index fields of a freshly decoded file (its offset is filled in when written)."""
    pixels, (width, height) = shrunk
    mtime_ns, size = file_stat(path)
    return {
        "width": width,
        "height": height,
        "sha256": sha256_of(Path(path)),
        "mtime_ns": mtime_ns,
        "size": size,
        "cached_height": int(pixels.shape[0]),
        "cached_width": int(pixels.shape[1]),
    }


def decoded_in_order(
    paths: Sequence[str], short_side: int, workers: int, desc: str
) -> Iterable[tuple[np.ndarray, tuple[int, int]]]:
    """Shrunk images of ``paths``, in order, decoded by a thread pool, with a progress bar."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        shrunk = pool.map(lambda p: shrink(p, short_side), paths)
        yield from tqdm(shrunk, total=len(paths), desc=desc, unit="img")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it into place."""
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.partial")
    partial.write_text(text)
    partial.replace(path)


def rebuild(
    index_path: Path,
    stem: str,
    sources: Sequence[Source],
    short_side: int,
    old: dict[str, Any] | None,
    workers: int,
) -> dict[str, Any]:
    """Write a new index (and a new packed file if any image must be decoded); return it.

    Images whose content is unchanged are copied from the old packed file; the others are
    decoded. Call with the cache's lock held.
    """
    directory = index_path.parent
    for leftover in directory.glob(f"{stem}.*.partial"):  # from a builder that crashed
        leftover.unlink(missing_ok=True)
    old_entries = {e["path"]: e for e in old["images"]} if old else {}
    unique = list(dict.fromkeys(s.path for s in sources))
    kept = {p: reusable(old_entries.get(os.path.abspath(p)), p) for p in unique}
    to_decode = [p for p in unique if kept[p] is None]
    if old is not None and not to_decode:
        facts = kept  # pixels unchanged: point the new index at the same packed file
        data_file, data_bytes, crc = old["data_file"], old["data_bytes"], old["data_crc32"]
    else:
        log.info("caching %d image(s) of '%s' in %s", len(to_decode), stem, directory)
        old_data = np.memmap(directory / old["data_file"], mode="r") if old else None
        decoded = iter(decoded_in_order(to_decode, short_side, workers, f"caching {stem}"))
        data_file = f"{stem}.{uuid.uuid4().hex[:8]}.u8"
        partial = directory / f"{data_file}.partial"
        facts, data_bytes, crc = {}, 0, 0
        with partial.open("wb") as out:
            for path in unique:
                entry = kept[path]
                if entry is None:
                    shrunk = next(decoded)
                    entry = file_facts(path, shrunk)
                    chunk = np.ascontiguousarray(shrunk[0]).tobytes()
                else:
                    start = entry["offset"]
                    length = entry["cached_height"] * entry["cached_width"]
                    chunk = old_data[start : start + length].tobytes()
                facts[path] = {**entry, "offset": data_bytes}
                out.write(chunk)
                crc = zlib.crc32(chunk, crc)
                data_bytes += len(chunk)
        partial.replace(directory / data_file)
    images = [{**facts[s.path], **metadata(s)} for s in sources]
    index = {
        "version": FORMAT_VERSION,
        "short_side": short_side,
        "data_file": data_file,
        "data_bytes": data_bytes,
        "data_crc32": crc,
        "images": images,
    }
    write_atomic(index_path, json.dumps(index))
    if old is not None and old["data_file"] != data_file:
        (directory / old["data_file"]).unlink(missing_ok=True)
    return index


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold the file lock at ``lock_path``, saying so when another process holds it first."""
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another job to finish building %s", lock_path.with_suffix(""))
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def open_cache(
    sources: Sequence[Source],
    cache_dir: str | Path,
    name: str,
    short_side: int = 256,
    workers: int | None = None,
) -> ImageCache:
    """The cache of ``sources`` in ``cache_dir``: reused when fresh, else (re)built first.

    ``name`` (e.g. the split) prefixes the file names; ``workers`` threads decode images
    (default: the CPU count, at most 8). Safe when several processes call it at once.
    """
    if not sources:
        raise ValueError(f"cache '{name}': no images to cache")
    if short_side < 1:
        raise ValueError(f"data.cache_short_side must be ≥ 1, got {short_side}")
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = cache_stem(name, sources, short_side)
    index_path = directory / f"{stem}.json"
    index = read_index(index_path, short_side)
    if index is None or not is_fresh(index, sources):
        with exclusive(directory / f"{stem}.lock"):
            index = read_index(index_path, short_side)  # another job may have built it
            if index is None or not is_fresh(index, sources):
                workers = workers or min(8, os.cpu_count() or 1)
                index = rebuild(index_path, stem, sources, short_side, index, workers)
    return ImageCache(directory / index["data_file"], sources, index)
