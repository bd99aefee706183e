"""One read per file: facts and pixels, reuse across runs, invalidation, concurrent writers,
corruption."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepcovid.data import cache as cache_module
from deepcovid.data.cache import CacheError, FileCache, dhash, inspect_file, shrink
from deepcovid.data.datamodule import XrayDataModule
from deepcovid.data.io import load_image
from tests.conftest import MODES, chest_like, make_covidx5k, save_in_mode

SHORT = 32


def write_images(folder: Path, count: int = 5) -> list[str]:
    """Images of several sizes and container modes, some larger than SHORT, some not."""
    paths = []
    for i in range(count):
        mode, suffix = MODES[i % len(MODES)]
        array = chest_like(24 + 20 * i, seed=i, positive=i % 2 == 0)[:, : 20 + 24 * i % 50]
        paths.append(str(save_in_mode(array, folder / f"img{i}{suffix}", mode)))
    return paths


def count_decodes(monkeypatch: pytest.MonkeyPatch, log: Path) -> None:
    """Append a line to ``log`` for every file decoded (also in forked children)."""
    decode = cache_module.decode_image

    def counted(source, path: str, *args):
        with log.open("a") as handle:
            handle.write(f"{path}\n")
        return decode(source, path, *args)

    monkeypatch.setattr(cache_module, "decode_image", counted)


def decodes(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def assert_pixels_match(store: FileCache, facts: dict, paths: list[str]) -> None:
    images = store.images(facts)
    for path in paths:
        expected = shrink(load_image(path), SHORT)
        loaded = images.load(path)
        assert loaded.dtype == torch.uint8 and loaded.shape == (1, *expected.shape)
        assert np.array_equal(loaded[0].numpy(), expected)


def test_one_read_gives_every_fact_and_the_pixels(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "images")
    store = FileCache(tmp_path / "cache", SHORT)
    facts = store.scan(paths, want_dhash=True, pixels=True)
    for path in paths:
        f, image = facts[path], load_image(path)
        assert f.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert (f.width, f.height) == image.size and f.problem is None
        assert f.size == os.path.getsize(path) and f.dhash == dhash(image)
        assert min(f.pixels.height, f.pixels.width) == min(SHORT, *image.size)  # never enlarged
    assert facts[paths[4]].container_mode == "I;16" and facts[paths[2]].container_mode == "RGBA"
    assert_pixels_match(store, facts, paths)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        f"files-s{SHORT}.json",
        f"files-s{SHORT}.lock",
        f"files-s{SHORT}.u8",
    ]


def test_second_scan_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_images(tmp_path / "images")
    store = FileCache(tmp_path / "cache", SHORT)
    first = store.scan(paths, want_dhash=True, pixels=True)
    reads: list[str] = []
    monkeypatch.setattr(cache_module, "inspect_file", lambda p, *a: reads.append(p))
    assert store.scan(paths, want_dhash=True, pixels=True) == first
    assert store.scan(paths[:2]) == {p: first[p] for p in paths[:2]}  # less asked: still nothing
    assert reads == []


def test_touched_file_is_hashed_changed_file_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_images(tmp_path / "images")
    store = FileCache(tmp_path / "cache", SHORT)
    first = store.scan(paths, pixels=True)
    log = tmp_path / "decodes.log"
    count_decodes(monkeypatch, log)
    os.utime(paths[1], ns=(1, 1))  # new mtime, same content: read and hashed, not decoded
    touched = store.scan(paths, pixels=True)
    assert decodes(log) == [] and touched[paths[1]].mtime_ns == 1
    assert touched[paths[1]].pixels == first[paths[1]].pixels
    save_in_mode(chest_like(40, seed=99, positive=True), Path(paths[3]), MODES[3][0])
    changed = store.scan(paths, pixels=True)
    assert decodes(log) == [os.path.abspath(paths[3])]  # only the changed file
    assert changed[paths[3]].sha256 != first[paths[3]].sha256
    assert_pixels_match(store, changed, paths)


def test_pixels_or_dhash_asked_later_are_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_images(tmp_path / "images", 3)
    store = FileCache(tmp_path / "cache", SHORT)
    facts = store.scan(paths)  # data.cache=false: facts only
    assert all(f.pixels is None and f.dhash is None for f in facts.values())
    log = tmp_path / "decodes.log"
    count_decodes(monkeypatch, log)
    facts = store.scan(paths, want_dhash=True, pixels=True)
    assert len(decodes(log)) == 3 and all(f.pixels and f.dhash for f in facts.values())
    assert_pixels_match(store, facts, paths)


def test_repeated_and_unusable_paths(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "images", 2)
    empty, text = tmp_path / "empty.png", tmp_path / "notes.png"
    empty.write_bytes(b"")
    text.write_text("not an image")
    store = FileCache(tmp_path / "cache", SHORT)
    asked = [paths[0], paths[1], paths[0], str(empty), str(text), str(tmp_path / "gone.png")]
    facts = store.scan(asked, pixels=True)
    assert list(facts) == list(dict.fromkeys(asked))
    assert "empty (0 bytes)" in facts[str(empty)].problem
    assert "cannot decode" in facts[str(text)].problem
    assert facts[str(tmp_path / "gone.png")].problem == "no such file."
    index = json.loads(store.index_path.read_text())
    assert sorted(index["files"]) == sorted(os.path.abspath(p) for p in paths)  # bad: not kept


def scan_and_read(arguments: tuple[list[str], Path, multiprocessing.Barrier]) -> list[int]:
    paths, cache_dir, barrier = arguments
    barrier.wait()  # every writer starts at the same moment
    store = FileCache(cache_dir, SHORT)
    images = store.images(store.scan(paths, pixels=True))
    return [int(images.load(p).sum()) for p in paths]


def test_concurrent_scans_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_images(tmp_path / "images")
    log = tmp_path / "decodes.log"
    count_decodes(monkeypatch, log)  # inherited by the forked processes
    context = multiprocessing.get_context("fork")
    n = 4
    barrier = context.Manager().Barrier(n)
    with context.Pool(n) as pool:
        results = pool.map(scan_and_read, [(paths, tmp_path / "cache", barrier)] * n)
    assert len(set(map(tuple, results))) == 1  # the same pixels everywhere
    assert sorted(decodes(log)) == sorted(map(os.path.abspath, paths))  # decoded by one process
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_unreadable_index_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_images(tmp_path / "images")
    store = FileCache(tmp_path / "cache", SHORT)
    store.scan(paths, pixels=True)
    store.index_path.write_text(store.index_path.read_text()[:100])
    log = tmp_path / "decodes.log"
    count_decodes(monkeypatch, log)
    facts = store.scan(paths, pixels=True)
    assert len(decodes(log)) == len(paths)
    assert_pixels_match(store, facts, paths)


def test_truncated_pixels_are_decoded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    paths = write_images(tmp_path / "images")
    store = FileCache(tmp_path / "cache", SHORT)
    before = store.scan(paths, pixels=True)
    last = max(paths, key=lambda p: before[p].pixels.offset)
    store.data_path.write_bytes(store.data_path.read_bytes()[:-10])  # a crashed copy, say
    log = tmp_path / "decodes.log"
    count_decodes(monkeypatch, log)
    facts = store.scan(paths, pixels=True)
    assert decodes(log) == [os.path.abspath(last)]  # only the image cut off
    assert_pixels_match(store, facts, paths)


def test_flipped_byte_is_caught_when_read(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "images", 2)
    store = FileCache(tmp_path / "cache", SHORT)
    facts = store.scan(paths, pixels=True)
    raw = bytearray(store.data_path.read_bytes())
    raw[facts[paths[1]].pixels.offset] ^= 0xFF
    store.data_path.write_bytes(bytes(raw))
    images = store.images(facts)
    images.load(paths[0])
    with pytest.raises(CacheError, match=f"{Path(paths[1]).name} are corrupt.*Delete"):
        images.load(paths[1])


def test_loader_pickles_without_its_memory_map(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "images", 2)
    store = FileCache(tmp_path / "cache", SHORT)
    images = store.images(store.scan(paths, pixels=True))
    images.load(paths[0])  # opens the memmap
    copy = pickle.loads(pickle.dumps(images))
    assert len(pickle.dumps(images)) < 10_000 and copy._data is None
    assert torch.equal(copy.load(paths[1]), images.load(paths[1]))


def test_non_utf8_name_is_reported(tmp_path: Path) -> None:
    latin1 = Path(os.fsdecode(os.fsencode(tmp_path) + b"/radiograf\xeda.png"))
    save_in_mode(chest_like(32, 0, True), latin1, "L")
    facts, pixels, _ = inspect_file(str(latin1))
    assert "not valid UTF-8" in facts.problem and pixels is None


def test_bad_short_side_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cache_short_side"):
        FileCache(tmp_path, 0)


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
    assert (tmp_path / "cache" / "files-s64.u8").stat().st_size == 25 * 64 * 64  # all images
    train = next(iter(cached_dm.train_dataloader()))
    assert train["image"].shape == (25, 3, 56, 56) and train["image"].dtype == torch.float32


def test_normalize_on_device_finishes_after_transfer(large_images: Path, tmp_path: Path):
    plain = next(iter(datamodule(large_images, tmp_path, cache=True).test_dataloader()))
    dm = datamodule(large_images, tmp_path, cache=True, normalize_on_device=True)
    raw = next(iter(dm.test_dataloader()))
    assert raw["image"].dtype == torch.uint8 and raw["image"].shape[1:] == (1, 56, 56)
    finished = dm.on_after_batch_transfer(raw, 0)
    assert torch.allclose(finished["image"], plain["image"], atol=1e-6)


def test_second_setup_reads_no_file(
    large_images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datamodule(large_images, tmp_path, cache=True, near_duplicates=True).setup()
    reads: list[str] = []
    monkeypatch.setattr(cache_module, "inspect_file", lambda p, *a: reads.append(p))
    again = datamodule(large_images, tmp_path, cache=True, near_duplicates=True)
    again.setup()
    assert reads == [] and len(again.table) == 25 and again.report.near_duplicates == []


def test_facts_judged_under_a_higher_pixel_limit_are_judged_again(tmp_path: Path) -> None:
    """`data.check --max-image-pixels` high, then the default: the cached facts of an image over
    the default limit must not let it through."""
    from deepcovid.data.io import DEFAULT_MAX_IMAGE_PIXELS, set_max_image_pixels

    big, small = tmp_path / "big.png", tmp_path / "small.png"
    Image.new("L", (300, 200), 90).save(big)  # 60,000 pixels
    Image.new("L", (100, 100), 90).save(small)
    store = FileCache(tmp_path / "cache", SHORT)
    paths = [str(big), str(small)]
    try:
        set_max_image_pixels(100_000)
        assert all(f.readable for f in store.scan(paths, pixels=True).values())
        set_max_image_pixels(50_000)
        facts = store.scan(paths, pixels=True)
        assert "60000 pixels) exceeds the limit of 50000" in facts[str(big)].problem
        assert facts[str(small)].readable
        set_max_image_pixels(100_000)  # raised again: usable again
        assert store.scan(paths, pixels=True)[str(big)].readable
    finally:
        set_max_image_pixels(DEFAULT_MAX_IMAGE_PIXELS)


def test_the_hash_is_streamed_while_decoding(tmp_path: Path) -> None:
    """inspect_file never holds a whole file: 30 MB after a small PNG's end are hashed in chunks
    (the decoder stops at IEND), and the sha256 is the file's."""
    import tracemalloc

    path = tmp_path / "tail.png"
    save_in_mode(chest_like(64, seed=1, positive=True), path, "L")
    with path.open("ab") as handle:
        handle.write(os.urandom(30 << 20))
    tracemalloc.start()
    try:
        facts, _, _ = inspect_file(str(path), want_dhash=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert facts.readable and facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB held while inspecting a 30 MiB file"


def big_jpeg(path: Path, size: tuple[int, int] = (1042, 800), mode: str = "L") -> Path:
    """A smooth radiograph-like JPEG of ``size`` (not a multiple of 8: a reduced-scale decode
    rounds its width up)."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    array = (128 + 100 * np.sin(x / 90) * np.cos(y / 70)).astype(np.uint8)
    Image.fromarray(array).convert(mode).save(path, quality=92)
    return path


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_large_jpegs_are_decoded_at_a_reduced_dct_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    path = big_jpeg(tmp_path / f"big-{mode}.jpg", mode=mode)
    decoded: list[tuple[int, int]] = []
    decode = cache_module.decode_image

    def recorded(source, name, *args):
        result = decode(source, name, *args)
        decoded.append(result.image.size)
        return result

    monkeypatch.setattr(cache_module, "decode_image", recorded)
    facts, pixels, _ = inspect_file(str(path), want_dhash=True, short_side=SHORT * 4)
    assert decoded == [(261, 200)]  # 1/4 scale: the smallest whose short side is >= 128
    assert (facts.width, facts.height) == (1042, 800)  # the file's size, not the draft's
    full = shrink(load_image(path), SHORT * 4)
    assert pixels.shape == full.shape == (128, 166)
    assert np.abs(pixels.astype(int) - full).mean() < 1.0  # same image, a few grey levels off
    only_facts, _, _ = inspect_file(str(path), want_dhash=True)
    assert decoded[-1] == (131, 100)  # facts alone: 1/8
    assert only_facts.dhash is not None and only_facts.sha256 == facts.sha256


def test_a_truncated_jpeg_is_caught_at_a_reduced_scale(tmp_path: Path) -> None:
    path = big_jpeg(tmp_path / "cut.jpg")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    for short_side in (None, SHORT):
        facts, pixels, _ = inspect_file(str(path), short_side=short_side)
        assert not facts.readable and pixels is None
        assert "truncated" in facts.problem, facts.problem


def test_a_turned_jpeg_keeps_its_upright_size(tmp_path: Path) -> None:
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    Image.new("L", (400, 300), 90).save(path, exif=exif)
    facts, pixels, _ = inspect_file(str(path), short_side=SHORT)
    assert (facts.width, facts.height) == (300, 400) == load_image(path).size
    assert pixels.shape == (SHORT * 4 // 3, SHORT)


def test_a_lower_pixel_limit_reaches_on_bad_file_through_the_cache(tmp_path: Path) -> None:
    from deepcovid.data.datamodule import BadFilesError
    from deepcovid.data.io import DEFAULT_MAX_IMAGE_PIXELS, set_max_image_pixels

    root = make_covidx5k(tmp_path / "data", {"train/covid": 6, "train/non": 6, "test/covid": 3,
                                             "test/non": 3})  # fmt: skip
    big = root / "train/covid/big.png"
    Image.new("L", (400, 300), 90).save(big)  # 120,000 pixels
    try:
        datamodule(root, tmp_path, max_image_pixels=200_000).setup()  # read and kept
        skipping = datamodule(root, tmp_path, max_image_pixels=100_000, on_bad_file="skip")
        skipping.setup()
        assert "exceeds the limit of 100000" in skipping.skipped[str(big)]
        with pytest.raises(BadFilesError, match="big.png"):
            datamodule(root, tmp_path, max_image_pixels=100_000).setup()
    finally:
        set_max_image_pixels(DEFAULT_MAX_IMAGE_PIXELS)
