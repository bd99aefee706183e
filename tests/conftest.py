"""Shared fixtures: generated X-ray-like images in every container mode, real data paths, and
one tiny trained run for every test that needs a checkpoint."""

from __future__ import annotations

import functools
import http.server
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# Generated images are not radiographs: the scope check lists them, but keeps and scores them
# (conf/data/covidx5k.yaml data.out_of_scope, conf/predict.yaml out_of_scope)
os.environ.setdefault("DEEPCOVID_OUT_OF_SCOPE", "keep")
os.environ.setdefault("DEEPCOVID_PREDICT_OUT_OF_SCOPE", "score")
# Under pytest-xdist (README: -n auto) each worker computes on one thread, as do the commands it
# starts: OpenMP threads of several workers spinning on the same cores cost more than they gain.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
# File facts and cached pixels of the test session (and of its subprocesses) stay out of ~/.cache
os.environ.setdefault("DEEPCOVID_CACHE_DIR", tempfile.mkdtemp(prefix="deepcovid-test-cache-"))

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"
CXR_DEV = SHARED_DATA / "cxr-dev"
requires_real_data = pytest.mark.skipif(
    not CXR_DEV.is_dir(), reason="../shared/data is absent (CI always has it)"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, which hands each worker whole files (--dist loadfile), slow tests
    first: the longest files start early instead of finishing last on one worker."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def chest_like(size: int, seed: int, positive: bool) -> np.ndarray:
    """A uint8 grayscale image with a bright blob whose side depends on the class."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    centre = 0.3 if positive else 0.7
    blob = np.exp(-((x - centre) ** 2 + (y - 0.5) ** 2) / 0.02)
    image = 60 + 150 * blob + rng.normal(0, 10, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def save_in_mode(array: np.ndarray, path: Path, mode: str) -> Path:
    """Save a grayscale array as ``mode``: L, RGB, RGBA, P, I;16 (16-bit PNG), or JPEG L/RGB."""
    image = Image.fromarray(array, mode="L")
    if mode == "I;16":
        image = Image.fromarray(array.astype(np.uint16) * 257)
    elif mode == "P":
        image = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode != "L":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


MODES = [
    ("L", ".png"),
    ("RGB", ".png"),
    ("RGBA", ".png"),
    ("P", ".png"),
    ("I;16", ".png"),
    ("L", ".jpg"),
    ("RGB", ".jpg"),
]


def make_covidx5k(root: Path, n_per_class: dict[str, int] | None = None, size: int = 64) -> Path:
    """A tiny COVID-Xray-5k tree (train/test × covid/non), cycling through every image mode."""
    n_per_class = n_per_class or {
        "train/covid": 12,
        "train/non": 24,
        "test/covid": 6,
        "test/non": 8,
    }
    seed = 0
    for folder, count in n_per_class.items():
        for i in range(count):
            mode, suffix = MODES[seed % len(MODES)]
            array = chest_like(size, seed, positive=folder.endswith("covid"))
            save_in_mode(array, root / folder / f"img{i:03d}{suffix}", mode)
            seed += 1
    return root


@pytest.fixture
def covidx5k(tmp_path: Path) -> Path:
    """A generated COVID-Xray-5k style dataset root."""
    return make_covidx5k(tmp_path / "covidx5k")


@pytest.fixture(scope="session")
def covidx5k_shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same generated dataset, built once per session for read-only tests."""
    return make_covidx5k(tmp_path_factory.mktemp("data") / "covidx5k")


def tiny_overrides(root: Path, out: Path, *extra: str) -> list[str]:
    """Overrides for a seconds-long CPU training run on generated data."""
    return [
        f"data.root={root}",
        "model.pretrained=false",
        "data.image_size=32",
        "data.batch_size=8",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "logger=csv",
        "print_config=false",
        "++failures.count=0",  # no failure-case figure: tiny_run and tests that need one add it
        *extra,
    ]


TINY_RUN = (
    "trainer.max_epochs=2", "data.val_fraction=0.25", "metrics.bootstrap_resamples=50",
    "failures.count=8",
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(covidx5k_shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny training run (resnet18 at 32 px, 2 epochs of 2 batches, on the generated data),
    shared read-only by every test that needs a trained model: its folder holds the best and
    last checkpoints, predictions, metrics, plots, report.md and the CSV log."""
    from deepcovid.train import train
    from deepcovid.utils.config import compose_config

    out = tmp_path_factory.mktemp("tiny_run")
    train(compose_config("train", tiny_overrides(covidx5k_shared, out, *TINY_RUN), str(out)))
    return out


CXR_DEV_RUN = (
    f"data.root={CXR_DEV}", "data.num_workers=0", "trainer=cpu", "logger=csv",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    "print_config=false", "metrics.bootstrap_resamples=50", "model.pretrained=false",
    "data.image_size=48", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
    "failures.count=4",
)  # fmt: skip


@pytest.fixture(scope="session")
def cxr_dev_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch resnet18 run on the real cxr-dev radiographs at 48 px (3 training batches),
    shared by the real-data tests: its final test writes a full evaluation."""
    from deepcovid.train import train
    from deepcovid.utils.config import compose_config

    out = tmp_path_factory.mktemp("cxr_train")
    train(compose_config("train", list(CXR_DEV_RUN), output_dir=str(out)))
    return out


def best_checkpoint(run: Path) -> Path:
    """The run's best checkpoint (the one its final test evaluated)."""
    (best,) = (run / "checkpoints").glob("best-epoch*.ckpt")
    return best


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a temp folder: (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def tiny_classifier():  # noqa: ANN201
    """A seeded 3-layer stand-in for a classifier (conv → pool → fc head), enough for the
    explainers and the audit's measures."""
    from types import SimpleNamespace

    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("conv", nn.Conv2d(3, 4, 3, padding=1))
    net.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    net.add_module("fc", nn.Linear(4, 2))
    return SimpleNamespace(net=net.eval(), head_name="fc", target_layer="conv")
