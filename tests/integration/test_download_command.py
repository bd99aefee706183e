"""The README's first command, ``python -m deepcovid.train data.download=true``, end to end
against a local HTTP server serving a small COVID-Xray-5k archive: the archive is fetched once
(under DDP too: rank 0 downloads, the other rank waits) and the run trains and tests on it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import tiny_overrides
from tests.data.test_download import archive_server, serve_dataset
from tests.integration.test_ddp import ON_CPU

COUNTS = (10, 15, 7, 8)  # train/covid, train/non, test/covid, test/non


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The served folder holding ``covid5k.zip``, and its sha256."""
    folder = tmp_path_factory.mktemp("served")
    return folder, serve_dataset(folder.parent / "source", folder, "covid5k.zip", COUNTS)


def train_with_download(archive: tuple[Path, str], tmp_path: Path, *extra: str) -> Path:
    """Run the command with ``data.download=true`` into a fresh root; assert it succeeded and
    fetched the archive exactly once. Returns the run folder."""
    folder, digest = archive
    root, out = tmp_path / "data" / "COVID-Xray-5k", tmp_path / "run"
    with archive_server(folder) as served:
        args = [
            "data.download=true",
            f"data.download_url={served.url}/covid5k.zip",
            f"data.download_sha256={digest}",
            *tiny_overrides(root, out, "data.val_fraction=0.25", *extra),
            f"hydra.run.dir={out}",
        ]
        ran = subprocess.run(
            [sys.executable, "-m", "deepcovid.train", *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert served.requests == Counter({"/covid5k.zip": 1})
    assert (root / "manifest.csv").is_file()  # the documented sources, laid out with the data
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert len(pd.read_csv(out / "predictions" / "test.csv")) == COUNTS[2] + COUNTS[3]
    return out


@pytest.mark.slow
def test_train_downloads_then_trains(archive: tuple[Path, str], tmp_path: Path) -> None:
    train_with_download(archive, tmp_path)


@pytest.mark.slow
def test_train_downloads_once_under_ddp(archive: tuple[Path, str], tmp_path: Path) -> None:
    out = train_with_download(archive, tmp_path, "trainer=ddp", "trainer.devices=2", *ON_CPU)
    assert (out / "train_ddp_process_1.log").is_file()  # the second rank ran
