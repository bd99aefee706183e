import contextlib
import functools
import hashlib
import http.server
import logging
import subprocess
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deepcovid.data.download import DownloadError, download_dataset
from deepcovid.data.samples import scan_folders
from tests.conftest import make_covidx5k


@dataclass
class Served:
    """What :func:`archive_server` serves: its base URL and the GET requests it got, by path.
    ``cut``: bytes held back from each body (its Content-Length stays the whole file's);
    ``stall``: send half of each body, then hang until the server stops."""

    url: str
    requests: Counter = field(default_factory=Counter)
    cut: int = 0
    stall: bool = False
    stop: threading.Event = field(default_factory=threading.Event)


class ArchiveHandler(http.server.SimpleHTTPRequestHandler):
    served: Served

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        served = self.served
        served.requests[self.path] += 1
        file = Path(self.directory) / self.path.lstrip("/")
        if not (served.cut or served.stall) or not file.is_file():
            return super().do_GET()
        body = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2 if served.stall else len(body) - served.cut])
        self.wfile.flush()
        if served.stall:
            served.stop.wait()


@contextlib.contextmanager
def archive_server(folder: Path, cut: int = 0, stall: bool = False) -> Iterator[Served]:
    """A real HTTP server on 127.0.0.1 serving ``folder`` (see :class:`Served`)."""
    served = Served("", cut=cut, stall=stall)
    handler = type("Handler", (ArchiveHandler,), {"served": served})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    server.daemon_threads = True
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield served
    finally:
        served.stop.set()
        server.shutdown()
        server.server_close()


FOLDERS = ("train/covid", "train/non", "test/covid", "test/non")


def serve_dataset(
    tmp_path: Path, served: Path, name: str, counts: tuple[int, int, int, int]
) -> str:
    """A small COVID-Xray-5k archive (counts of train/covid, train/non, test/covid, test/non)
    zipped into the served folder as ``name``; its sha256."""
    source = make_covidx5k(tmp_path / "src", dict(zip(FOLDERS, counts, strict=True)), size=16)
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


def scratch_folders(root: Path) -> list[Path]:
    return sorted(root.parent.glob(".download-*"))


@pytest.mark.parametrize(
    ("limits", "knob"),
    [({}, "data.download_max_ratio"), ({"max_bytes": 1 << 20}, "data.download_max_bytes")],
)
def test_an_archive_over_the_limits_is_refused(
    tmp_path: Path, http_folder, limits: dict[str, int], knob: str
) -> None:
    """A valid layout plus 8 MiB of zeros that deflate to a few KiB (a ratio near 1000)."""
    served, url = http_folder
    serve_dataset(tmp_path, served, "bomb.zip", (1, 1, 1, 1))
    with zipfile.ZipFile(served / "bomb.zip", "a") as bundle:
        bundle.writestr("data_upload_v3/pad.bin", bytes(8 << 20), zipfile.ZIP_DEFLATED)
    root = tmp_path / "data" / "x"
    with pytest.raises(DownloadError, match=knob) as refused:
        download_dataset(f"{url}/bomb.zip", root, **limits)
    assert "bomb.zip" in str(refused.value)
    assert not root.exists() and not scratch_folders(root)
    # Raised knobs let a trusted archive through.
    download_dataset(f"{url}/bomb.zip", root, max_ratio=10_000)
    assert (root / "pad.bin").stat().st_size == 8 << 20


def test_a_truncated_body_names_the_url_and_byte_counts(tmp_path: Path) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    serve_dataset(tmp_path, folder, "a.zip", (1, 1, 1, 1))
    size = (folder / "a.zip").stat().st_size
    root = tmp_path / "data" / "x"
    with archive_server(folder, cut=100) as served:
        url = f"{served.url}/a.zip"
        with pytest.raises(DownloadError, match=f"{size - 100} of the {size} bytes") as cut:
            download_dataset(url, root)
    assert url in str(cut.value)
    assert not root.exists() and not scratch_folders(root)


@pytest.mark.parametrize("stop", [RuntimeError("disk gone"), KeyboardInterrupt()])
def test_an_interrupted_download_leaves_no_scratch(
    tmp_path: Path, http_folder, monkeypatch: pytest.MonkeyPatch, stop: BaseException
) -> None:
    from deepcovid.data import download

    served, url = http_folder
    serve_dataset(tmp_path, served, "a.zip", (1, 1, 1, 1))

    def interrupted(*args: object, **kwargs: object) -> None:
        raise stop

    monkeypatch.setattr(download, "extract_zip", interrupted)
    root = tmp_path / "data" / "x"
    with pytest.raises(type(stop)):
        download_dataset(f"{url}/a.zip", root)
    assert not root.exists() and not scratch_folders(root)


@pytest.mark.slow
def test_a_killed_download_is_cleaned_up_by_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL leaves the scratch folder; the next download into the same root removes it
    (and says so), then downloads as usual."""
    folder = tmp_path / "served"
    folder.mkdir()
    serve_dataset(tmp_path, folder, "a.zip", (1, 1, 1, 1))
    root = tmp_path / "data" / "COVID-Xray-5k"
    with archive_server(folder, stall=True) as stalled:
        code = (
            "from deepcovid.data.download import download_dataset; "
            f"download_dataset({stalled.url + '/a.zip'!r}, {str(root)!r})"
        )
        process = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.monotonic() + 120
        while not list(root.parent.glob(".download-*/archive.zip.part")):
            assert process.poll() is None and time.monotonic() < deadline, "no download began"
            time.sleep(0.1)
        process.kill()
        process.wait()
    (stale,) = scratch_folders(root)
    with caplog.at_level(logging.WARNING), archive_server(folder) as served:
        download_dataset(f"{served.url}/a.zip", root)
    assert not scratch_folders(root) and len(scan_folders(root)) == 4
    assert served.requests == Counter({"/a.zip": 1})
    assert stale.name in caplog.text and "killed" in caplog.text


def test_a_partial_earlier_layout_is_refused_not_nested(tmp_path: Path) -> None:
    """A root holding only train/ (an earlier layout cut short): refused before any request,
    never train/train."""
    folder = tmp_path / "served"
    folder.mkdir()
    serve_dataset(tmp_path, folder, "a.zip", (1, 1, 1, 1))
    root = make_covidx5k(tmp_path / "data" / "x", {"train/covid": 1, "train/non": 1}, size=16)
    with (
        archive_server(folder) as served,
        pytest.raises(DownloadError, match="train/ but no test/"),
    ):
        download_dataset(f"{served.url}/a.zip", root)
    assert served.requests == Counter()
    assert not (root / "train" / "train").exists() and not (root / "test").exists()


def test_the_limits_are_data_config_knobs(tmp_path: Path, http_folder) -> None:
    from deepcovid.utils.config import compose_config
    from deepcovid.utils.instantiate import instantiate_with

    served, url = http_folder
    serve_dataset(tmp_path, served, "a.zip", (1, 1, 1, 1))
    overrides = [
        f"data.root={tmp_path / 'data' / 'x'}",
        "data.download=true",
        f"data.download_url={url}/a.zip",
        "data.download_max_bytes=1000",
    ]
    datamodule = instantiate_with(compose_config("train", overrides, str(tmp_path / "run")).data)
    with pytest.raises(DownloadError, match="data.download_max_bytes=1000"):
        datamodule.prepare_data()
