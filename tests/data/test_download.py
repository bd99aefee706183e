import hashlib
import zipfile
from pathlib import Path

import pytest

from deepcovid.data.download import DownloadError, download_dataset
from deepcovid.data.samples import scan_folders
from tests.conftest import make_covidx5k


def serve_dataset(
    tmp_path: Path, served: Path, name: str, counts: tuple[int, int, int, int]
) -> str:
    """A small COVID-Xray-5k archive (counts of train/covid, train/non, test/covid, test/non)
    zipped into the served folder as ``name``; its sha256."""
    folders = ("train/covid", "train/non", "test/covid", "test/non")
    source = make_covidx5k(tmp_path / "src", dict(zip(folders, counts, strict=True)), size=16)
    return zip_dataset(source, served / name)


def zip_dataset(source: Path, archive: Path, prefix: str = "data_upload_v3") -> str:
    with zipfile.ZipFile(archive, "w") as bundle:
        for file in sorted(source.rglob("*")):
            if file.is_file():
                bundle.write(file, f"{prefix}/{file.relative_to(source)}")
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def test_download_verify_extract_and_lay_out(tmp_path: Path, http_folder) -> None:
    served, url = http_folder
    digest = serve_dataset(tmp_path, served, "covid5k.zip", (2, 3, 1, 1))
    root = download_dataset(f"{url}/covid5k.zip", tmp_path / "data" / "COVID-Xray-5k", digest)
    table = scan_folders(root)
    assert len(table) == 7 and set(table["split"]) == {"train", "test"}
    assert not list((tmp_path / "data").glob(".download-*"))  # scratch space cleaned up
    assert not (root / "manifest.csv").exists()  # no sources given, no manifest
    # A second call finds the data in place and does not download again.
    (served / "covid5k.zip").unlink()
    assert download_dataset(f"{url}/covid5k.zip", root, digest) == root


def test_bad_checksum_is_refused_and_nothing_laid_out(tmp_path: Path, http_folder) -> None:
    served, url = http_folder
    serve_dataset(tmp_path, served, "a.zip", (1, 1, 1, 1))
    root = tmp_path / "data" / "x"
    with pytest.raises(DownloadError, match="does not match the expected"):
        download_dataset(f"{url}/a.zip", root, "0" * 64)
    assert not root.exists()


def test_archive_escaping_the_target_is_refused(tmp_path: Path, http_folder) -> None:
    served, url = http_folder
    with zipfile.ZipFile(served / "evil.zip", "w") as bundle:
        bundle.writestr("data/train/covid/a.png", b"x")
        bundle.writestr("../../escaped.txt", b"gotcha")
    root = tmp_path / "deep" / "data" / "x"
    with pytest.raises(DownloadError, match="escaped.txt"):
        download_dataset(f"{url}/evil.zip", root)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_unreachable_url_says_what_to_do(tmp_path: Path, http_folder) -> None:
    _, url = http_folder
    with pytest.raises(DownloadError, match="point data.root"):
        download_dataset(f"{url}/missing.zip", tmp_path / "x")


def test_documented_sources_become_the_manifest(tmp_path: Path, http_folder) -> None:
    """COVID-Xray-5k's classes come from two collections: the manifest says which, per image."""
    from deepcovid.data.samples import read_manifest

    served, url = http_folder
    digest = serve_dataset(tmp_path, served, "covid5k.zip", (2, 3, 1, 2))
    sources = {"covid": "COVID-19 image data collection", "non-covid": "CheXpert"}
    root = download_dataset(f"{url}/covid5k.zip", tmp_path / "COVID-Xray-5k", digest, sources)
    table = read_manifest(root / "manifest.csv")
    folders = scan_folders(root)
    assert sorted(table["path"]) == sorted(folders["path"])
    by_path = table.set_index("path")
    for _, row in folders.iterrows():
        assert by_path.loc[row["path"], "split"] == row["split"]
        assert by_path.loc[row["path"], "source"] == (
            "CheXpert" if row["label"] == 0 else sources["covid"]
        )
    with pytest.raises(DownloadError, match="no source for class"):
        download_dataset(f"{url}/covid5k.zip", tmp_path / "other", digest, {"covid": "x"})
    assert not (tmp_path / "other").exists()
