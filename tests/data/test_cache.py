"""The preprocessed image cache: build, reuse, invalidation, concurrent builders, corruption."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from deepcovid.data import cache as cache_module
from deepcovid.data.cache import Source, open_cache, shrink
from deepcovid.data.datamodule import XrayDataModule
from deepcovid.utils.files import sha256_of
from tests.conftest import MODES, chest_like, make_covidx5k, save_in_mode

SHORT = 32


def write_images(folder: Path, count: int = 5) -> list[Source]:
    """Images of several sizes and container modes, some larger than SHORT, some not."""
    sources = []
    for i in range(count):
        mode, suffix = MODES[i % len(MODES)]
        array = chest_like(24 + 20 * i, seed=i, positive=i % 2 == 0)[:, : 20 + 24 * i % 50]
        path = save_in_mode(array, folder / f"img{i}{suffix}", mode)
        sources.append(Source(str(path), i % 2, f"patient{i // 2}", "generated"))
    return sources


def count_decodes(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Append a line to ``log`` for every image the cache decodes (also in forked children)."""

    def counted(path: str, short_side: int):
        with log.open("a") as handle:
            handle.write(f"{path}\n")
        return shrink(path, short_side)

    monkeypatch.setattr(cache_module, "shrink", counted)


def decodes(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def assert_matches_files(cache: cache_module.ImageCache, sources: list[Source]) -> None:
    for source in sources:
        expected, _ = shrink(source.path, SHORT)
        loaded = cache.load(source.path)
        assert loaded.dtype == torch.uint8 and loaded.shape == (1, *expected.shape)
        assert np.array_equal(loaded[0].numpy(), expected)


def test_build_shrinks_once_and_indexes_every_image(tmp_path: Path) -> None:
    sources = write_images(tmp_path / "images")
    cache = open_cache(sources, tmp_path / "cache", "train", SHORT)
    assert_matches_files(cache, sources)
    for source, entry in zip(sources, cache.images, strict=True):
        pixels, (width, height) = shrink(source.path, SHORT)
        assert min(pixels.shape) == min(SHORT, width, height)  # shrunk, never enlarged
        assert (entry["width"], entry["height"]) == (width, height)
        assert entry["sha256"] == sha256_of(Path(source.path))
        assert entry["label"] == source.label and entry["patient_id"] == source.patient_id
        assert entry["source"] == "generated" and entry["path"] == os.path.abspath(source.path)
    files = sorted(p.suffix for p in (tmp_path / "cache").iterdir())
    assert files == [".json", ".lock", ".u8"]  # one packed file per split, plus index and lock


def test_second_open_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = write_images(tmp_path / "images")
    first = open_cache(sources, tmp_path / "cache", "train", SHORT)
    count_decodes(monkeypatch, tmp_path / "decodes.log")
    second = open_cache(sources, tmp_path / "cache", "train", SHORT)
    assert decodes(tmp_path / "decodes.log") == []
    assert second.data_path == first.data_path
    other_split = open_cache(sources[:2], tmp_path / "cache", "test", SHORT)
    assert other_split.data_path != first.data_path and len(other_split) == 2


def test_changed_file_is_decoded_again_touched_file_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = write_images(tmp_path / "images")
    first = open_cache(sources, tmp_path / "cache", "train", SHORT)
    log = tmp_path / "decodes.log"
    count_decodes(monkeypatch, log)

    os.utime(sources[1].path, ns=(1, 1))  # new mtime, same content: hashed, not decoded
    touched = open_cache(sources, tmp_path / "cache", "train", SHORT)
    assert decodes(log) == [] and touched.data_path == first.data_path
    assert touched.images[1]["mtime_ns"] == 1

    changed = chest_like(40, seed=99, positive=True)
    save_in_mode(changed, Path(sources[3].path), MODES[3][0])
    rebuilt = open_cache(sources, tmp_path / "cache", "train", SHORT)
    assert decodes(log) == [sources[3].path]  # only the changed file
    assert rebuilt.data_path != first.data_path and not first.data_path.exists()
    assert rebuilt.images[3]["sha256"] == sha256_of(Path(sources[3].path))
    assert_matches_files(rebuilt, sources)


def test_new_labels_rewrite_the_index_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sources = write_images(tmp_path / "images")
    first = open_cache(sources, tmp_path / "cache", "train", SHORT)
    count_decodes(monkeypatch, tmp_path / "decodes.log")
    relabelled = [Source(s.path, 1 - s.label, s.patient_id, s.source) for s in sources]
    second = open_cache(relabelled, tmp_path / "cache", "train", SHORT)
    assert decodes(tmp_path / "decodes.log") == [] and second.data_path == first.data_path
    assert [e["label"] for e in second.images] == [s.label for s in relabelled]


def test_repeated_paths_are_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sources = write_images(tmp_path / "images", 2)
    count_decodes(monkeypatch, tmp_path / "decodes.log")
    cache = open_cache([*sources, sources[0]], tmp_path / "cache", "train", SHORT)
    assert len(decodes(tmp_path / "decodes.log")) == 2 and len(cache) == 3
    assert cache.images[0]["offset"] == cache.images[2]["offset"]


def build_and_read(arguments: tuple[list[Source], Path, multiprocessing.Barrier]) -> tuple:
    sources, cache_dir, barrier = arguments
    barrier.wait()  # every builder starts at the same moment
    cache = open_cache(sources, cache_dir, "train", SHORT)
    return cache.data_path.name, [cache.load(s.path).sum().item() for s in sources]


def test_concurrent_builders_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = write_images(tmp_path / "images")
    log = tmp_path / "decodes.log"
    count_decodes(monkeypatch, log)  # inherited by the forked builders
    context = multiprocessing.get_context("fork")
    n = 4
    barrier = context.Manager().Barrier(n)
    with context.Pool(n) as pool:
        results = pool.map(build_and_read, [(sources, tmp_path / "cache", barrier)] * n)
    assert len(set(map(repr, results))) == 1  # same packed file, same pixels everywhere
    assert sorted(decodes(log)) == sorted(s.path for s in sources)  # decoded by one builder
    assert len(list((tmp_path / "cache").glob("*.u8"))) == 1
    assert not list((tmp_path / "cache").glob("*.partial"))


def corrupt_index(cache_dir: Path) -> None:
    (index,) = cache_dir.glob("*.json")
    index.write_text(index.read_text()[: len(index.read_text()) // 2])


def truncate_data(cache_dir: Path) -> None:
    (data,) = cache_dir.glob("*.u8")
    data.write_bytes(data.read_bytes()[:-10])


def flip_a_byte(cache_dir: Path) -> None:
    (data,) = cache_dir.glob("*.u8")
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))


def drop_a_field(cache_dir: Path) -> None:
    (index_path,) = cache_dir.glob("*.json")
    index = json.loads(index_path.read_text())
    del index["images"][0]["cached_width"]
    index_path.write_text(json.dumps(index))


@pytest.mark.parametrize("damage", [corrupt_index, truncate_data, flip_a_byte, drop_a_field])
def test_corrupt_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage) -> None:
    sources = write_images(tmp_path / "images")
    open_cache(sources, tmp_path / "cache", "train", SHORT)
    damage(tmp_path / "cache")
    (tmp_path / "cache" / "train-leftover.1234.u8.partial").write_bytes(b"x")
    count_decodes(monkeypatch, tmp_path / "decodes.log")
    rebuilt = open_cache(sources, tmp_path / "cache", "train", SHORT)
    assert len(decodes(tmp_path / "decodes.log")) == len(sources)
    assert_matches_files(rebuilt, sources)


def test_cache_pickles_without_its_memory_map(tmp_path: Path) -> None:
    sources = write_images(tmp_path / "images", 2)
    cache = open_cache(sources, tmp_path / "cache", "train", SHORT)
    cache.load(sources[0].path)  # opens the memmap
    copy = pickle.loads(pickle.dumps(cache))
    assert len(pickle.dumps(cache)) < 10_000 and copy._data is None
    assert torch.equal(copy.load(sources[1].path), cache.load(sources[1].path))


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no images"):
        open_cache([], tmp_path, "train")
    with pytest.raises(ValueError, match="cache_short_side"):
        open_cache(write_images(tmp_path / "images", 1), tmp_path, "train", 0)


# ---- through the data module -------------------------------------------------------------
@pytest.fixture(scope="module")
def large_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COVID-Xray-5k tree whose images are larger than the cache's short side."""
    counts = {"train/covid": 6, "train/non": 10, "test/covid": 4, "test/non": 5}
    return make_covidx5k(tmp_path_factory.mktemp("large") / "covidx5k", counts, size=120)


def datamodule(root: Path, tmp_path: Path, **kwargs) -> XrayDataModule:
    """Eval resize = round(56 / 0.875) = 64 = the cache's short side: cached = uncached."""
    return XrayDataModule(
        str(root),
        image_size=56,
        batch_size=25,
        num_workers=0,
        val_fraction=0.25,
        cache_dir=str(tmp_path / "cache"),
        cache_short_side=64,
        **kwargs,
    )


def test_cached_loaders_equal_uncached_ones(large_images: Path, tmp_path: Path) -> None:
    plain = next(iter(datamodule(large_images, tmp_path).test_dataloader()))
    cached_dm = datamodule(large_images, tmp_path, cache=True)
    cached = next(iter(cached_dm.test_dataloader()))
    assert torch.equal(plain["index"], cached["index"])
    assert torch.allclose(plain["image"], cached["image"], atol=1e-6)
    (data,) = (tmp_path / "cache").glob("test-*.u8")
    assert data.stat().st_size == 9 * 64 * 64  # 9 test images stored at 64 × 64, uint8
    train = next(iter(cached_dm.train_dataloader()))
    assert train["image"].shape == (25, 3, 56, 56) and train["image"].dtype == torch.float32


def test_normalize_on_device_finishes_after_transfer(large_images: Path, tmp_path: Path):
    plain = next(iter(datamodule(large_images, tmp_path, cache=True).test_dataloader()))
    dm = datamodule(large_images, tmp_path, cache=True, normalize_on_device=True)
    raw = next(iter(dm.test_dataloader()))
    assert raw["image"].dtype == torch.uint8 and raw["image"].shape[1:] == (1, 56, 56)
    finished = dm.on_after_batch_transfer(raw, 0)
    assert torch.allclose(finished["image"], plain["image"], atol=1e-6)
    with pytest.raises(ValueError, match="preset transforms"):
        datamodule(large_images, tmp_path, normalize_on_device=True, eval_transform=lambda x: x)


def test_cached_files_are_not_validated_again(large_images: Path, tmp_path: Path) -> None:
    dm = datamodule(large_images, tmp_path, cache=True)
    dm.setup()
    assert len(dm.paths_to_validate(dm.table)) == len(dm.table)  # nothing cached yet
    for split in ("train", "val", "test"):
        dm.split_cache(split)
    assert len(dm.paths_to_validate(dm.table)) == 0
