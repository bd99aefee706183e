"""Download, verify and safely extract a dataset archive (COVID-Xray-5k by default).

One download into a root at a time (a lock file beside it); the archive is fetched and
extracted in a scratch folder beside the root (``.download-<root name>-*``), removed on any
error; a scratch folder left by a killed download is removed by the next one.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath

import pandas as pd
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from deepcovid import CLASS_NAMES
from deepcovid.data.samples import scan_folders
from deepcovid.utils.files import CHUNK, sha256_of, write_csv_atomic

log = logging.getLogger(__name__)
MAX_EXTRACTED_BYTES = 20 << 30  # 20 GiB: COVID-Xray-5k extracts to a few hundred MB
MAX_RATIO = 100  # extracted / compressed: images barely compress, zip bombs reach 1000s


class DownloadError(RuntimeError):
    """A download that failed, did not verify, or holds an unsafe archive."""


def fetch(url: str, target: Path, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``target`` with a progress bar; the file appears only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"could not download {url}: {error}. Check the network, or download the archive "
            "by hand and point data.root at the extracted folder."
        ) from error
    if total is not None and received != total:
        partial.unlink()
        raise DownloadError(
            f"{url}: the download was cut short: received {received} of the {total} bytes the "
            "server announced (Content-Length). Retry; if it keeps failing, download the archive "
            "by hand and point data.root at the extracted folder."
        )
    partial.replace(target)
    return target


def verify(path: Path, sha256: str | None) -> str:
    """Check ``path`` against ``sha256`` (deleting it on mismatch); return its actual hash."""
    actual = sha256_of(path)
    if sha256 is None:
        log.warning("%s: no sha256 pinned in config; downloaded file has sha256 %s", path, actual)
    elif actual != sha256.lower():
        path.unlink()
        raise DownloadError(
            f"{path}: sha256 {actual} does not match the expected {sha256}; the file was "
            "deleted. The archive changed upstream or the download was corrupted: retry, or "
            "update data.download_sha256 if the new archive is trusted."
        )
    return actual


def safe_members(archive: zipfile.ZipFile, target: Path) -> list[zipfile.ZipInfo]:
    """The archive's members, refusing any that would land outside ``target``."""
    target = target.resolve()
    members = archive.infolist()
    for member in members:
        name = PurePosixPath(member.filename.replace("\\", "/"))
        destination = (target / name).resolve()
        is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
        if name.is_absolute() or not destination.is_relative_to(target) or is_link:
            raise DownloadError(
                f"refusing to extract '{member.filename}': it would write outside {target} "
                "(absolute path, '..' or symlink). The archive is unsafe."
            )
    return members


def check_size(
    archive: zipfile.ZipFile,
    name: str,
    max_bytes: int = MAX_EXTRACTED_BYTES,
    max_ratio: float = MAX_RATIO,
) -> None:
    """Refuse an archive that would extract to more than ``max_bytes``, or more than
    ``max_ratio`` times its compressed size (a zip bomb). The sizes are the members' declared
    ones: :mod:`zipfile` never writes more than a member declares (a lie fails its CRC check)."""
    members = archive.infolist()
    extracted = sum(m.file_size for m in members)
    compressed = max(sum(m.compress_size for m in members), 1)
    if extracted > max_bytes:
        raise DownloadError(
            f"{name} would extract to {extracted} bytes, over data.download_max_bytes="
            f"{max_bytes}. If the archive is trusted, raise data.download_max_bytes."
        )
    if extracted / compressed > max_ratio:
        raise DownloadError(
            f"{name} would extract to {extracted} bytes from {compressed} compressed (a ratio of "
            f"{extracted / compressed:.0f}, over data.download_max_ratio={max_ratio}): a zip "
            "bomb? If the archive is trusted, raise data.download_max_ratio."
        )


def extract_zip(
    archive_path: Path,
    target: Path,
    max_bytes: int = MAX_EXTRACTED_BYTES,
    max_ratio: float = MAX_RATIO,
    name: str | None = None,
) -> None:
    """Extract a zip archive into ``target`` after checking its size (:func:`check_size`) and
    every member path. ``name``: how errors name the archive (its path by default)."""
    name = name or str(archive_path)
    try:
        with zipfile.ZipFile(archive_path) as archive:
            check_size(archive, name, max_bytes, max_ratio)
            archive.extractall(target, members=safe_members(archive, target))
    except zipfile.BadZipFile as error:
        raise DownloadError(
            f"{name} is not a valid zip archive ({error}): the download is damaged or the URL "
            "serves something else. Check data.download_url, or download the archive by hand "
            "and point data.root at the extracted folder."
        ) from error


def find_split_root(folder: Path) -> Path:
    """The folder inside an extracted archive that holds ``train/`` and ``test/``."""
    for candidate in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise DownloadError(f"{folder}: the archive holds no folder with train/ and test/ inside.")


def write_sources_manifest(root: Path, sources: Mapping[str, str]) -> Path:
    """``root/manifest.csv``: every image laid out, with its label, split and the source its
    class was drawn from (``sources``: class name → source, as the dataset documents it)."""
    table = scan_folders(root)
    names = [CLASS_NAMES[label] for label in table["label"]]
    manifest = pd.DataFrame({
        "path": [Path(p).relative_to(root).as_posix() for p in table["path"]],
        "label": names,
        "split": table["split"],
        "source": [sources[name] for name in names],
    })  # fmt: skip
    return write_csv_atomic(manifest, root / "manifest.csv")


def laid_out(root: Path) -> bool:
    """Whether ``root`` holds ``train/`` and ``test/``; refuse one without the other (an earlier
    layout cut short, or other data): downloading into it would mix or nest the two."""
    present = [name for name in ("train", "test") if (root / name).is_dir()]
    if len(present) == 1:
        (other,) = {"train", "test"} - set(present)
        raise DownloadError(
            f"{root} holds {present[0]}/ but no {other}/ (an earlier download cut short, or other "
            "data): move or remove it and run again to download, point data.root elsewhere, or "
            "set data.download=false to use it as it is."
        )
    return len(present) == 2


def remove_stale_scratch(root: Path) -> None:
    """Remove the scratch folders of earlier downloads into ``root`` that were killed (the
    caller holds ``root``'s download lock, so no live download owns one)."""
    for stale in sorted(root.parent.glob(f".download-{root.name}-*")):
        log.warning("removing %s, left by an earlier download into %s that was killed", stale, root)
        shutil.rmtree(stale)


def lay_out(split_root: Path, root: Path) -> None:
    """Move the extracted ``split_root``'s contents to ``root`` (one rename when ``root`` is
    absent or empty), refusing names that ``root`` already holds."""
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    if not root.exists():
        split_root.rename(root)
        return
    taken = sorted(child.name for child in split_root.iterdir() if (root / child.name).exists())
    if taken:
        raise DownloadError(
            f"{root} already holds {taken}, which the archive also holds: move or remove them, "
            "or point data.root at an empty folder."
        )
    for child in split_root.iterdir():
        child.rename(root / child.name)


@contextlib.contextmanager
def download_lock(root: Path) -> Iterator[None]:
    """Hold ``root``'s download lock (a file beside it): one download into a root at a time,
    the others waiting (and then finding it laid out)."""
    lock = FileLock(root.parent / f".{root.name}.download.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process's download into %s (%s)", root, lock.lock_file)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def fetch_and_lay_out(
    url: str, root: Path, sha256: str | None, max_bytes: int, max_ratio: float
) -> None:
    """Fetch, verify and extract the archive in a scratch folder beside ``root``, then lay it
    out at ``root``; the scratch folder goes on any error, or with the next download if killed."""
    remove_stale_scratch(root)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=f".download-{root.name}-") as scratch:
        archive = fetch(url, Path(scratch) / "archive.zip")
        verify(archive, sha256)
        extracted = Path(scratch) / "extracted"
        extract_zip(archive, extracted, max_bytes, max_ratio, name=f"the archive at {url}")
        lay_out(find_split_root(extracted), root)


def download_dataset(
    url: str,
    root: str | Path,
    sha256: str | None = None,
    sources: Mapping[str, str] | None = None,
    max_bytes: int = MAX_EXTRACTED_BYTES,
    max_ratio: float = MAX_RATIO,
) -> Path:
    """Download the archive at ``url`` and lay it out at ``root`` (``root/train``,
    ``root/test``), with ``root/manifest.csv`` naming each class's source when ``sources`` are
    given. Does nothing when ``root`` already holds ``train/`` and ``test/``. ``max_bytes`` and
    ``max_ratio`` bound the extraction (:func:`check_size`)."""
    root = Path(root)
    missing = sorted(set(CLASS_NAMES) - set(sources)) if sources else []
    if missing:
        raise DownloadError(
            f"data.download_sources names no source for class(es) {missing}: name one for each "
            f"of {list(CLASS_NAMES)}, or set it to null"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    with download_lock(root):
        if laid_out(root):
            log.info("%s already holds train/ and test/; skipping download", root)
            return root
        fetch_and_lay_out(url, root, sha256, max_bytes, max_ratio)
        if sources:
            manifest = write_sources_manifest(root, sources)
            log.info("wrote %s (sources by class: %s)", manifest, dict(sources))
    log.info("dataset laid out at %s", root)
    return root
