"""Lung segmentation speed on CPU: images/s of the shipped segmenter, one torch thread.

    python -m benchmarks.lungs [--images 500] [--batch-size 8] [--threads 1] [--root DIR]

Images are decoded beforehand (decoding is not timed): the chest X-rays under ``--root``
(default ../shared/data/cxr-dev, short side 256 px), cycled up to ``--images``, or generated
256 × 256 images when the folder is absent. Timed: the whole ``LungSegmenter.segment_batch``
path (resize to the working size, U-Net forward pass, upsampling to each image's size,
threshold, two largest regions, hole filling, quality flags), and the forward pass alone.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deepcovid.data.io import is_image_file, load_image
from deepcovid.lungs.model import model_input
from deepcovid.lungs.segmenter import load_segmenter
from deepcovid.lungs.weights import SHIPPED_WEIGHTS

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr-dev"


def benchmark_images(root: Path, count: int, size: int = 256) -> tuple[list[Image.Image], str]:
    """``count`` decoded grayscale images and a description of where they came from."""
    files = sorted(p for p in root.rglob("*") if is_image_file(p)) if root.is_dir() else []
    if files:
        decoded = [load_image(p) for p in files[:count]]
        return list(itertools.islice(itertools.cycle(decoded), count)), f"{root} ({len(files)})"
    rng = np.random.default_rng(0)
    generated = [
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)) for _ in range(count)
    ]
    return generated, f"generated {size}x{size} noise ({root} absent)"


def timed(function, batches: list[list[Image.Image]]) -> float:
    """Seconds for ``function`` over every batch, after one warm-up batch."""
    function(batches[0])
    start = time.perf_counter()
    for batch in batches:
        function(batch)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    segmenter = load_segmenter(args.weights)
    images, origin = benchmark_images(args.root, args.images)
    batches = [images[i : i + args.batch_size] for i in range(0, len(images), args.batch_size)]

    @torch.inference_mode()
    def forward(batch: list[Image.Image]) -> None:
        segmenter.network(torch.stack([model_input(i, segmenter.working_size) for i in batch]))

    whole = timed(segmenter.segment_batch, batches)
    network = timed(forward, batches)
    sizes = {image.size for image in images}
    print(f"{len(images)} images from {origin}; {len(sizes)} distinct sizes")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch "
        f"{args.batch_size}, {platform.processor() or platform.machine()}"
    )
    print("| path | seconds | images/s | ms/image |")
    print("|---|---|---|---|")
    for name, seconds in (
        ("segment_batch (all steps)", whole),
        ("resize + network forward only", network),
    ):
        print(
            f"| {name} | {seconds:.1f} | {len(images) / seconds:.1f} | "
            f"{1000 * seconds / len(images):.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
