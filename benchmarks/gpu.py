"""GPU benchmark: train and inference images/s per backbone with AMP (bf16) and channels_last,
fed through deepcovid's preprocessed cache. One GPU, a few minutes, no internet.

    python -m benchmarks.gpu --out gpu.md            # also writes gpu.json
    python -m benchmarks.gpu --device cpu --steps 2 --batch-size 4   # smoke test

Synthetic radiograph-sized JPEGs (about ``--source-size`` px, random aspect) are written to a
temporary folder and cached once (grayscale uint8, short side 256, one memory-mapped file);
DataLoader workers then crop/flip/rotate the small uint8 images (deepcovid's presets) and the
GPU converts to float and normalises (``data.normalize_on_device``). Each backbone is
fine-tuned in full (Adam, cross-entropy) and run for inference (loss + P(COVID) kept), both
from the cached loader and, for reference, from one batch already on the GPU (model only: the
network's ceiling, which the data path should reach).

Imports only torch, torchvision, numpy, Pillow and deepcovid modules that need nothing else
(plus tqdm and filelock, which torch and Lightning install).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from benchmarks.loops import PRECISIONS, inference_step, timed, train_step
from deepcovid.data.cache import CachedImages, FileCache
from deepcovid.data.transforms import EvalPreset, Preprocessing, Preset, TrainPreset
from deepcovid.models.backbones import create_backbone
from deepcovid.results.markdown import table

BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]
COLUMNS = ["train_cached", "train_model_only", "inference_cached", "inference_model_only"]


def radiograph(seed: int, size: int) -> Image.Image:
    """A radiograph-sized grayscale image: dark lung fields on a bright body, plus noise."""
    rng = np.random.default_rng(seed)
    height, width = (int(size * rng.uniform(0.8, 1.0)) for _ in range(2))
    y, x = np.mgrid[0:64, 0:64] / 64
    lungs = sum(np.exp(-((x - cx) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.08)) for cx in (0.3, 0.7))
    small = (200 - 120 * lungs + rng.normal(0, 8, (64, 64))).clip(0, 255).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))
    noise = rng.integers(0, 24, (height, width), dtype=np.uint8)
    return Image.fromarray(np.maximum(base, 24) - noise)


def write_radiographs(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` synthetic radiographs saved as JPEG in ``folder``."""

    def write(i: int) -> Path:
        path = folder / f"radiograph{i:03d}.jpg"
        radiograph(i, size).save(path, quality=90)
        return path

    with ThreadPoolExecutor() as pool:
        return list(pool.map(write, range(count)))


class CachedGeometry(Dataset):
    """Cached images through a preset's geometry: uint8 (1, S, S) crops and labels.

    (deepcovid's XrayDataset does the same over a pandas table; this benchmark avoids pandas.)
    """

    def __init__(self, cache: CachedImages, paths: list[str], preset: Preset) -> None:
        self.cache, self.paths, self.geometry = cache, paths, preset.geometry

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.geometry(self.cache.load(self.paths[i])), "label": i % 2}


def measure(
    backbone: str, loaders: dict[str, DataLoader], presets: dict[str, Preset], args
) -> dict[str, float]:
    """Images/s of full fine-tuning and inference, from the cached loader and model-only."""
    device = torch.device(args.device)
    net = create_backbone(backbone, pretrained=False).net.to(device)
    net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    results = {}
    for mode in ("train", "inference"):
        finish = presets[mode].finish
        if mode == "train":
            net.train()
            step = train_step(net, optimizer, device, args.precision, torch.channels_last, finish)
        else:
            net.eval()
            step = inference_step(net, device, args.precision, torch.channels_last, finish)
        on_device = {k: v.to(device) for k, v in next(iter(loaders[mode])).items()}
        for source, batches in (("cached", loaders[mode]), ("model_only", [on_device])):
            timing = timed(step, batches, args.warmup, args.steps, device)
            results[f"{mode}_{source}"] = timing.per_second
    return results


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({os.cpu_count()} cores)"


def report(results: dict[str, dict[str, float]], facts: dict[str, Any]) -> str:
    """The results as Markdown: settings, then one row per backbone."""
    header = ["backbone", "train img/s (cached data)", "train img/s (model only)",
              "inference img/s (cached data)", "inference img/s (model only)"]  # fmt: skip
    rows = [[name, *(f"{values[c]:.1f}" for c in COLUMNS)] for name, values in results.items()]
    settings = ", ".join(f"{k}={v}" for k, v in facts.items())
    return f"{settings}\n\n{table(header, rows)}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbones", nargs="+", default=BACKBONES)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 10 on GPU, 1)")
    parser.add_argument("--precision", choices=PRECISIONS, help="default bf16-mixed, CPU 32-true")
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--images", type=int, default=64, help="distinct synthetic radiographs")
    parser.add_argument("--source-size", type=int, default=2500, help="their side, about (px)")
    parser.add_argument("--out", type=Path, help="write the table here (.md) and as .json")
    args = parser.parse_args(argv)
    on_gpu = args.device != "cpu"
    args.warmup = args.warmup if args.warmup is not None else (10 if on_gpu else 1)
    args.precision = args.precision or ("bf16-mixed" if on_gpu else "32-true")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepcovid-gpu-bench-") as scratch:
        scratch = Path(scratch)
        files = write_radiographs(scratch, args.images, args.source_size)
        rows = args.batch_size * (args.warmup + args.steps + 2)  # one epoch per measurement
        paths = [str(files[i % len(files)]) for i in range(rows)]
        build_start = time.perf_counter()
        store = FileCache(scratch)
        cache = store.images(store.scan(paths, pixels=True))
        build = time.perf_counter() - build_start
        preprocessing = Preprocessing(args.image_size)
        presets = {"train": TrainPreset(preprocessing), "inference": EvalPreset(preprocessing)}
        loaders = {
            mode: DataLoader(
                CachedGeometry(cache, paths, preset),
                batch_size=args.batch_size,
                shuffle=mode == "train",
                drop_last=True,
                num_workers=args.workers,
                pin_memory=on_gpu,
                persistent_workers=args.workers > 0,
            )
            for mode, preset in presets.items()
        }
        results = {}
        for backbone in args.backbones:
            results[backbone] = measure(backbone, loaders, presets, args)
            print(backbone, {k: round(v, 1) for k, v in results[backbone].items()}, flush=True)
    facts = {
        "device": device_name(args.device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "precision": args.precision,
        "channels_last": True,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "warmup": args.warmup,
        "steps": args.steps,
        "workers": args.workers,
        "cache_build_s": round(build, 1),
        "cached_images": args.images,
        "source_size": args.source_size,
        "total_s": round(time.perf_counter() - started, 1),
    }
    text = report(results, facts)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        payload = {"settings": facts, "results": results}
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
