"""Download, verify and safely extract a dataset archive (COVID-Xray-5k by default)."""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pandas as pd
from tqdm.auto import tqdm

from deepcovid import CLASS_NAMES
from deepcovid.data.samples import scan_folders
from deepcovid.utils.files import CHUNK, sha256_of, write_csv_atomic

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A download that failed, did not verify, or holds an unsafe archive."""


def fetch(url: str, target: Path, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``target`` with a progress bar; the file appears only when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"could not download {url}: {error}. Check the network, or download the archive "
            "by hand and point data.root at the extracted folder."
        ) from error
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


def extract_zip(archive_path: Path, target: Path) -> None:
    """Extract a zip archive into ``target`` after checking every member path."""
    with zipfile.ZipFile(archive_path) as archive:
        archive.extractall(target, members=safe_members(archive, target))


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


def download_dataset(
    url: str, root: str | Path, sha256: str | None = None, sources: Mapping[str, str] | None = None
) -> Path:
    """Download the archive at ``url`` and lay it out at ``root`` (``root/train``,
    ``root/test``), with ``root/manifest.csv`` naming each class's source when ``sources`` are
    given. Does nothing when ``root`` already holds ``train/`` and ``test/``."""
    root = Path(root)
    missing = sorted(set(CLASS_NAMES) - set(sources)) if sources else []
    if missing:
        raise DownloadError(
            f"data.download_sources names no source for class(es) {missing}: name one for each "
            f"of {list(CLASS_NAMES)}, or set it to null"
        )
    if (root / "train").is_dir() and (root / "test").is_dir():
        log.info("%s already holds train/ and test/; skipping download", root)
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".download-") as scratch:
        scratch = Path(scratch)
        archive = fetch(url, scratch / "archive.zip")
        verify(archive, sha256)
        extracted = scratch / "extracted"
        extract_zip(archive, extracted)
        split_root = find_split_root(extracted)
        root.mkdir(parents=True, exist_ok=True)
        for child in split_root.iterdir():
            shutil.move(str(child), root / child.name)
    if sources:
        log.info(
            "wrote %s (sources by class: %s)", write_sources_manifest(root, sources), dict(sources)
        )
    log.info("dataset laid out at %s", root)
    return root
