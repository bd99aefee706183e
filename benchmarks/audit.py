"""The shortcut audit's cost against one occlusion pass over the same images, in one run.

    python -m benchmarks.audit [--images 500] [--image-size 224] [--threads 1] [--root DIR]
    python -m benchmarks.audit --images 500 --device cuda

Baseline: occlusion heatmaps (window 16, stride 8, exact, incremental inference) of every
image, in batches. Audit: :func:`deepcovid.shortcuts.measure.measure`, everything the audit
computes per image: P(COVID) intact, the lungs removed and the lungs only (two ablation
passes), occlusion and Grad-CAM maps scored against the lungs, the penultimate features, and
finding each image's lung mask (V7 Labs or the shipped segmenter). Same random-weight
ResNet18, same images (cxr-dev, cycled up to ``--images``), same batch size.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from deepcovid.data.dataset import XrayDataset
from deepcovid.data.io import load_image
from deepcovid.data.samples import scan_folders
from deepcovid.data.transforms import EvalPreset, Preprocessing
from deepcovid.explain.explainers import GradCamExplainer, OcclusionExplainer
from deepcovid.models.classifier import CovidClassifier
from deepcovid.shortcuts.masks import AuditMasks
from deepcovid.shortcuts.measure import measure

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr-dev"


def images_table(root: Path, count: int) -> pd.DataFrame:
    """``count`` rows of ``root``'s images (cycled), with the audit's columns."""
    table = scan_folders(root)
    table = pd.concat([table] * (count // len(table) + 1), ignore_index=True).head(count)
    return table.assign(lung_mask=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--device", default="cpu", help="cpu | cuda (the model and segmenter)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"skipped: {args.root} is absent")
        return 0
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CovidClassifier("resnet18", pretrained=False).eval().to(args.device)
    preset = EvalPreset(Preprocessing(image_size=args.image_size))
    table = images_table(args.root, args.images)
    dataset = XrayDataset(table, preset, load_image)
    occlusion = OcclusionExplainer(args.window, args.stride, score="logit")

    started = time.perf_counter()
    for start in range(0, len(dataset), args.batch_size):
        positions = range(start, min(start + args.batch_size, len(dataset)))
        occlusion(model, torch.stack([dataset[i]["image"] for i in positions]).to(args.device))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    one_pass = time.perf_counter() - started

    masks = AuditMasks(preset, device=args.device)
    explainers = {"occlusion": occlusion, "gradcam": GradCamExplainer()}
    started = time.perf_counter()
    measured = measure(model, dataset, table, masks, explainers, batch_size=args.batch_size)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    audit = time.perf_counter() - started
    assert len(measured.images) == len(table)

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.machine()
    print(f"{where}, {args.threads} torch thread(s), "
          f"{len(table)} images at {args.image_size} px, occlusion {args.window}/{args.stride}, "
          f"batch {args.batch_size}")  # fmt: skip
    print(f"one occlusion pass: {one_pass:.1f} s ({one_pass / len(table):.2f} s/image)")
    print(f"audit measurements: {audit:.1f} s ({audit / len(table):.2f} s/image)")
    print(f"ratio audit / occlusion pass: {audit / one_pass:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
