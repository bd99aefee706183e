"""Training data path speed: torchvision ImageFolder + PIL (the seed's loader) vs deepcovid's
preprocessed cache, on the same full-resolution radiographs, in one run.

    python -m benchmarks.dataloader [--root ../shared/data/cxr-fullres] [--workers 2]

Both pipelines produce the same training batches (random resized crop 224, horizontal flip,
±10° rotation, ImageNet-normalised 3×224×224 float) from the same images, with the same
DataLoader settings; the ratio compares these two. A third row shows the cached path when
the float conversion is left to the GPU (uint8 1×224×224 batches). Each is timed over whole
epochs after one warm-up epoch. The cache is built first (timed separately: a one-off cost
reused by later runs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision import transforms as v1

from benchmarks.loops import Timing
from deepcovid.data.cache import FileCache
from deepcovid.data.dataset import XrayDataset
from deepcovid.data.samples import read_manifest, scan_folders
from deepcovid.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, TrainPreset
from deepcovid.results.markdown import table

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr-fullres"


def sample_table(root: Path) -> pd.DataFrame:
    """Every image under ``root``: from its manifest.csv when present, else class folders."""
    manifest = root / "manifest.csv"
    return read_manifest(manifest) if manifest.is_file() else scan_folders(root)


def image_folder(samples: pd.DataFrame, tree: Path, image_size: int) -> datasets.ImageFolder:
    """The seed's pipeline: an ImageFolder (``tree/<class>/<file>`` links) decoding full-size
    RGB with PIL, then torchvision v1 transforms."""
    for i, row in enumerate(samples.itertuples()):
        name = f"{i:05d}-{Path(row.path).name}"  # unique even where folders repeat file names
        link = tree / ("covid" if row.label == 1 else "non-covid") / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(row.path).resolve())
    transform = v1.Compose(
        [
            v1.RandomResizedCrop(image_size, scale=(0.8, 1.0)),
            v1.RandomHorizontalFlip(),
            v1.RandomRotation(10),
            v1.ToTensor(),
            v1.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    return datasets.ImageFolder(str(tree), transform=transform)


def epochs(dataset: Dataset, args: argparse.Namespace) -> Timing:
    """Images/s over whole epochs (at least ``args.seconds``) after one warm-up epoch."""
    loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    for _ in loader:  # warm-up: worker start, page cache
        pass
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds or images == 0:
        for batch in loader:
            images += len(batch[1] if isinstance(batch, list) else batch["label"])
    return Timing(images, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (both)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--short-side", type=int, default=256, help="the cache's short side")
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum timed seconds each")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"skipped: {args.root} is absent (needs ../shared/data/cxr-fullres)")
        return 0
    torch.manual_seed(0)
    samples = sample_table(args.root)
    with tempfile.TemporaryDirectory(prefix="deepcovid-bench-") as scratch:
        scratch = Path(scratch)
        baseline = epochs(image_folder(samples, scratch / "tree", args.image_size), args)
        start = time.perf_counter()
        store = FileCache(scratch / "cache", args.short_side)
        cache = store.images(store.scan(samples["path"].tolist(), pixels=True))
        build = time.perf_counter() - start
        preset = TrainPreset(Preprocessing(args.image_size))
        cached = epochs(XrayDataset(samples, preset, cache.load), args)
        geometry_only = epochs(XrayDataset(samples, preset.geometry, cache.load), args)
    rows = [
        ["ImageFolder + PIL (full resolution)", baseline.images, f"{baseline.seconds:.1f}",
         f"{baseline.per_second:.1f}"],
        [f"deepcovid cache ({args.short_side} px uint8 memmap)", cached.images,
         f"{cached.seconds:.1f}", f"{cached.per_second:.1f}"],
        ["… uint8 batches, normalised on the device (data.normalize_on_device)",
         geometry_only.images, f"{geometry_only.seconds:.1f}", f"{geometry_only.per_second:.1f}"],
    ]  # fmt: skip
    print(
        f"{len(samples)} images from {args.root}, batch {args.batch_size}, "
        f"{args.workers} workers, {args.image_size} px training augmentation\n"
    )
    print(table(["pipeline", "images", "seconds", "images/s"], rows))
    print(f"\ncache build (once): {build:.1f} s for {len(cache)} images")
    ratio = cached.per_second / baseline.per_second
    print(f"ratio cached / ImageFolder + PIL: {ratio:.1f}× (goal ≥ 20×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
