"""What reading each image file tells, kept so that every file is read and decoded once.

Start-up used to pass over the data several times (decode to validate, read again for sha256,
decode again for the perceptual hash and for the preprocessed cache). Here one read and one
decode per file give all of it, in :func:`inspect_file`:

- its facts: size and mtime, sha256 of the bytes (taken as the decoder reads the file, which
  is never held whole in memory), container mode and size, the reason it cannot be used
  (``problem``), and, when asked, the 256-bit difference hash of the decoded image;
- a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8; Pillow's ``draft``) that keeps
  the pixels' short side, or the dHash's thumbnail for facts alone: every coefficient is still
  decoded (a truncated file is still caught), only the inverse DCT is smaller;
- with ``data.cache=true``, its pixels: 8-bit grayscale with the short side shrunk to
  ``short_side`` (never enlarged), appended to one packed file read back through ``numpy.memmap``.

:class:`FileCache` keeps both in a cache folder shared by later runs and sweep jobs: an index
(JSON, one entry per absolute path) and the packed pixels.

- Reuse: an entry is trusted while the file's size and mtime are unchanged; a file whose mtime
  changed is read and hashed again, and decoded again only if its content changed. Every scan
  judges the kept size against today's pixel limit (``data.max_image_pixels``).
- Concurrency: writers take a file lock; the packed file only grows (readers' memory maps stay
  valid) and the index is replaced atomically after the pixels are on disk.
- Corruption: an index that does not parse is rebuilt; pixels beyond the packed file's end are
  decoded again; each image's CRC-32 is checked when it is read.

Imports only numpy, torch, torchvision, Pillow, tqdm and filelock (no pandas), so GPU
benchmarks can use it on bare machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import torch
from filelock import FileLock, Timeout
from PIL import Image
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm

from deepcovid.data.io import UnreadableImageError, check_pixel_count, decode_image
from deepcovid.utils.files import CHUNK, sha256_of, write_text_atomic
from deepcovid.utils.system import available_cpus

log = logging.getLogger(__name__)
FORMAT_VERSION = 2
HASH_SIZE = 16  # dHash of a 17 x 16 thumbnail: 256 bits
NON_UTF8_NAME = (
    "the file name is not valid UTF-8, so it cannot be written to CSV/JSON results; rename "
    "the file (e.g. `convmv -f latin1 -t utf8 --notest FILE`)"
)


def default_cache_dir() -> Path:
    """Where facts and pixels are kept unless ``data.cache_dir`` says otherwise:
    ``$DEEPCOVID_CACHE_DIR``, else ``~/.cache/deepcovid``."""
    return Path(os.environ.get("DEEPCOVID_CACHE_DIR") or Path.home() / ".cache" / "deepcovid")


class CacheError(RuntimeError):
    """A cache that cannot be read; the message says what to do."""


@dataclass(frozen=True)
class Placement:
    """Where an image's shrunk pixels sit in the packed file."""

    offset: int
    height: int
    width: int
    crc32: int


@dataclass(frozen=True)
class FileFacts:
    """What one read of a file told. ``problem`` says why it cannot be used (None: it decodes);
    ``dhash`` and ``pixels`` are None unless they were asked for."""

    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    container_mode: str | None = None
    width: int | None = None
    height: int | None = None
    problem: str | None = None
    dhash: str | None = None
    pixels: Placement | None = None

    @property
    def readable(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> FileFacts:
        pixels = entry.get("pixels")
        return cls(**{**entry, "pixels": Placement(**pixels) if pixels else None})


def dhash(image: Image.Image, size: int = HASH_SIZE) -> str:
    """Difference hash: is each pixel of a (size+1) x size thumbnail brighter than its right
    neighbour; ``size * size`` bits as hex."""
    thumb = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR))
    bits = thumb[:, 1:].astype(np.int16) > thumb[:, :-1]
    return np.packbits(bits.ravel()).tobytes().hex()


def shrink(
    image: Image.Image, short_side: int, full_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Grayscale uint8 (H, W) with the short side shrunk to ``short_side`` (never enlarged),
    by the antialiased resize of :class:`~deepcovid.data.transforms.EvalPreset`. The shape is
    the one the file's ``full_size`` (width, height) gives, when ``image`` is a reduced-scale
    decode of it."""
    width, height = full_size or image.size
    pixels = F.pil_to_tensor(image)
    short, long = sorted((width, height))
    if short > short_side:
        long = int(short_side * long / short)  # as torchvision sizes the long side
        pixels = F.resize(
            pixels, [short_side, long] if height == short else [long, short_side], antialias=True
        )
    return pixels[0].numpy()


class Probe(Protocol):
    """Something else to learn from the image a scan decodes, so that it costs no read of its
    own (the scope check): :meth:`measure` runs in the decoding thread on the decoded image
    (short side at least :attr:`side`), :meth:`take` in the scanning thread, in order."""

    side: int

    def measure(self, image: Image.Image) -> Any: ...

    def take(self, path: str, facts: FileFacts, measured: Any) -> None: ...


def file_stat(path: str) -> tuple[int, int]:
    """(size in bytes, mtime in ns): the fast change check."""
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


class HashingReader(io.RawIOBase):
    """A binary file whose sha256 is taken as it is read: each byte is hashed the first time a
    read passes it (a seek past unread bytes hashes them first), so a decoder's one pass over
    the file is also the hash's, and the whole file is never held in memory."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.hashed = 0  # bytes [0, hashed) are in the digest

    @property
    def name(self) -> str:
        return self.handle.name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def catch_up(self, position: int | None) -> None:
        """Hash the unread bytes up to ``position`` (None: the end of the file)."""
        back = self.handle.tell()
        self.handle.seek(self.hashed)
        while position is None or self.hashed < position:
            chunk = self.handle.read(
                CHUNK if position is None else min(CHUNK, position - self.hashed)
            )
            if not chunk:
                break
            self.digest.update(chunk)
            self.hashed += len(chunk)
        self.handle.seek(back)

    def readinto(self, buffer: Any) -> int:
        position = self.handle.tell()
        if position > self.hashed:
            self.catch_up(position)
        count = self.handle.readinto(buffer)
        if count and position + count > self.hashed:
            self.digest.update(memoryview(buffer)[self.hashed - position : count])
            self.hashed = position + count
        return count

    def hexdigest(self) -> str:
        """The sha256 of the whole file (the bytes no read reached are read now)."""
        self.catch_up(None)
        return self.digest.hexdigest()


def inspect_file(
    path: str,
    want_dhash: bool = False,
    short_side: int | None = None,
    previous: FileFacts | None = None,
    probe: Probe | None = None,
) -> tuple[FileFacts, np.ndarray | None, Any]:
    """Read ``path`` once: its facts, its shrunk pixels when ``short_side`` is given, and what
    ``probe`` measured of the decoded image (None when the file was not decoded).

    The sha256 is taken while the decoder reads the file. A JPEG is decoded at the smallest
    DCT scale that still gives ``short_side``, the probe's side, or the dHash's thumbnail.
    ``previous`` facts are kept (hashed, not decoded) when the bytes still have their sha256
    and carry everything asked for.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return FileFacts(problem=NON_UTF8_NAME), None, None
    try:
        size, mtime_ns = file_stat(path)
        if (
            previous is not None
            and previous.readable
            and (previous.dhash is not None or not want_dhash)
            and (previous.pixels is not None or short_side is None)
        ):
            digest = sha256_of(path)
            if previous.sha256 == digest:
                return dataclasses.replace(previous, size=size, mtime_ns=mtime_ns), None, None
        with open(path, "rb") as handle:
            reader = HashingReader(handle)
            try:
                side = max(short_side or HASH_SIZE + 1, probe.side if probe else 0)
                decoded = decode_image(io.BufferedReader(reader, CHUNK), path, side)
            except UnreadableImageError as error:
                decoded, problem = None, str(error).removeprefix(f"{path}: ")
            stat = {"size": size, "mtime_ns": mtime_ns, "sha256": reader.hexdigest()}
    except OSError as error:
        problem = "no such file." if isinstance(error, FileNotFoundError) else str(error)
        return FileFacts(problem=problem), None, None
    if decoded is None:
        return FileFacts(**stat, problem=problem), None, None
    image = decoded.image
    facts = FileFacts(
        **stat,
        container_mode=decoded.container_mode,
        width=decoded.size[0],
        height=decoded.size[1],
        dhash=dhash(image) if want_dhash else None,
    )
    shrunk = None if short_side is None else shrink(image, short_side, decoded.size)
    return facts, shrunk, probe.measure(image) if probe else None


def judged(facts: FileFacts, path: str) -> FileFacts:
    """``facts`` judged under today's pixel limit: cached facts of an image read under a
    higher ``data.max_image_pixels`` do not let it through a lower one."""
    if not facts.readable or facts.width is None or facts.height is None:
        return facts
    try:
        check_pixel_count(Path(path), facts.width * facts.height)
    except UnreadableImageError as error:
        return dataclasses.replace(facts, problem=str(error).removeprefix(f"{Path(path)}: "))
    return facts


def decoding_threads() -> int:
    """Threads for reading and decoding: decoders release the GIL, so a few more than the CPUs
    this process may use."""
    return min(32, available_cpus() + 4)


class CachedImages:
    """The cached pixels of some files, read through a lazily opened memmap of the packed file.

    Picklable for DataLoader workers: each process opens its own memmap.
    """

    def __init__(self, data_path: Path, placements: dict[str, Placement]) -> None:
        self.data_path = data_path
        self.placements = placements
        self._data: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.placements)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}

    def data(self) -> np.memmap:
        """The packed file, memory-mapped read-only."""
        if self._data is None:
            self._data = np.memmap(self.data_path, dtype=np.uint8, mode="r")
        return self._data

    def load(self, path: str) -> torch.Tensor:
        """The cached image of ``path`` as a uint8 tensor of shape (1, H, W)."""
        place = self.placements[path]
        pixels = np.array(self.data()[place.offset : place.offset + place.height * place.width])
        if zlib.crc32(pixels) != place.crc32:
            raise CacheError(
                f"{self.data_path}: the cached pixels of {path} are corrupt (CRC mismatch). "
                f"Delete {self.data_path.parent} and run again: the cache is rebuilt."
            )
        return torch.from_numpy(pixels).view(1, place.height, place.width)


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold the file lock at ``lock_path``, saying so when another process holds it first."""
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another job to finish updating %s", lock_path.with_suffix(""))
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


class FileCache:
    """Facts and (optionally) shrunk pixels of image files, kept in ``directory``.

    One index and one packed file per ``short_side`` (``files-s256.json``, ``files-s256.u8``).
    """

    def __init__(self, directory: str | Path, short_side: int = 256) -> None:
        if short_side < 1:
            raise ValueError(f"data.cache_short_side must be ≥ 1, got {short_side}")
        self.directory = Path(directory)
        self.short_side = short_side
        stem = f"files-s{short_side}"
        self.index_path = self.directory / f"{stem}.json"
        self.data_path = self.directory / f"{stem}.u8"
        self.lock_path = self.directory / f"{stem}.lock"

    def read_index(self) -> dict[str, Any]:
        """The index, without the pixels that the packed file does not hold."""
        empty = {"version": FORMAT_VERSION, "short_side": self.short_side, "files": {}}
        try:
            index = json.loads(self.index_path.read_text(encoding="utf-8"))
            if index["version"] != FORMAT_VERSION or index["short_side"] != self.short_side:
                return empty
            files = {path: FileFacts.from_json(entry) for path, entry in index["files"].items()}
        except FileNotFoundError:
            return empty
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("cache index %s is unreadable (%s): rebuilding it", self.index_path, error)
            return empty
        held = self.data_path.stat().st_size if self.data_path.is_file() else 0
        for path, facts in files.items():
            place = facts.pixels
            if place is not None and place.offset + place.height * place.width > held:
                files[path] = dataclasses.replace(facts, pixels=None)
        return {**index, "files": files}

    @staticmethod
    def is_current(facts: FileFacts | None, path: str, want_dhash: bool, pixels: bool) -> bool:
        """Whether ``facts`` still describe ``path`` (unchanged size and mtime) with everything
        asked for. Unusable files are always looked at again."""
        if facts is None or not facts.readable:
            return False
        if (want_dhash and facts.dhash is None) or (pixels and facts.pixels is None):
            return False
        try:
            return file_stat(path) == (facts.size, facts.mtime_ns)
        except OSError:
            return False

    def scan(
        self,
        paths: Sequence[str],
        want_dhash: bool = False,
        pixels: bool = False,
        workers: int | None = None,
        probe: Probe | None = None,
    ) -> dict[str, FileFacts]:
        """Facts of every path (keyed as given), reading only the files that are new or changed
        since the last scan; ``pixels`` also caches their shrunk pixels; ``probe`` is shown each
        image this scan decodes."""
        absolute = {path: os.path.abspath(path) for path in paths}
        wanted = list(dict.fromkeys(absolute.values()))
        index = self.read_index()
        todo = [
            p for p in wanted if not self.is_current(index["files"].get(p), p, want_dhash, pixels)
        ]
        if todo:
            self.directory.mkdir(parents=True, exist_ok=True)
            with exclusive(self.lock_path):
                index = self.read_index()  # another job may have done it meanwhile
                files = index["files"]
                todo = [
                    p for p in wanted if not self.is_current(files.get(p), p, want_dhash, pixels)
                ]
                if todo:
                    threads = workers or decoding_threads()
                    self.update(index, todo, want_dhash, pixels, threads, probe)
        return {path: judged(index["files"][absolute[path]], path) for path in paths}

    def update(
        self,
        index: dict[str, Any],
        todo: list[str],
        want_dhash: bool,
        pixels: bool,
        workers: int,
        probe: Probe | None = None,
    ) -> None:
        """Read ``todo``, append new pixels to the packed file, then replace the index (with the
        lock held). Unusable files are returned but not kept."""
        files: dict[str, FileFacts] = index["files"]
        short_side = self.short_side if pixels else None
        log.info("reading %d image file(s) (cache: %s)", len(todo), self.directory)
        # append only: bytes a crashed writer left after the last entry stay unused, since
        # truncating could cut pixels under another job's memory map
        data_bytes = self.data_path.stat().st_size if self.data_path.is_file() else 0
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            self.data_path.open("ab") as packed,
        ):
            inspected = pool.map(
                lambda p: inspect_file(p, want_dhash, short_side, files.get(p), probe), todo
            )
            for path, (facts, shrunk, measured) in zip(
                todo, tqdm(inspected, total=len(todo), desc="reading images", unit="img"),
                strict=True,
            ):  # fmt: skip
                if shrunk is not None:
                    chunk = np.ascontiguousarray(shrunk).tobytes()
                    packed.write(chunk)
                    place = Placement(data_bytes, *shrunk.shape, zlib.crc32(chunk))
                    facts = dataclasses.replace(facts, pixels=place)
                    data_bytes += len(chunk)
                if measured is not None:
                    probe.take(path, facts, measured)
                files[path] = facts
            packed.flush()
            os.fsync(packed.fileno())
        kept = {p: f.to_json() for p, f in files.items() if f.readable}
        write_text_atomic(json.dumps({**index, "files": kept}), self.index_path)

    def images(self, facts: dict[str, FileFacts]) -> CachedImages:
        """A loader of the cached pixels of the files in ``facts`` (a :meth:`scan` result with
        ``pixels=True``)."""
        placements = {path: f.pixels for path, f in facts.items() if f.pixels is not None}
        return CachedImages(self.data_path, placements)
