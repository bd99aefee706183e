"""Lung-cropped training as the control for shortcuts outside the lungs (issue 13.5).

On a copy of cxr-dev with a marker planted outside the lungs of the COVID images
(:mod:`deepcovid.shortcuts.plant`) and on the real cxr-dev, train the same small model from
scratch with and without ``data.lung_crop=true``; record the test AUROC, the audit's AUROC
with the lungs removed and with only the lungs, and (planted copy) how much of the marker
each image's lung box keeps. Writes ``lung_crop.json`` and prints a Markdown table.

    python experiments/lung_crop.py [--data ../shared/data/cxr-dev] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from deepcovid.audit import audit
from deepcovid.data.io import load_image
from deepcovid.data.lung_crop import box_of
from deepcovid.data.masks import v7_available
from deepcovid.data.samples import list_images
from deepcovid.lungs.provider import LungMaskProvider
from deepcovid.results.markdown import number, table
from deepcovid.shortcuts.plant import marker_mask, plant
from deepcovid.train import train
from deepcovid.utils.config import compose_config

RECIPE = [  # the planted-shortcut test's: a small ResNet18 from scratch that can learn a marker
    "model.pretrained=false", "model.finetune=full", "model.optimizer.lr=1e-3",
    "data.image_size=64", "data.batch_size=32", "data.cache=true", "data.balance=weighted_loss",
    "data.augmentation.hflip_prob=0", "trainer.max_epochs=8", "trainer=cpu", "logger=csv",
    "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
    "print_config=false", "data.num_workers=2", "metrics.bootstrap_resamples=500",
]  # fmt: skip


def marker_kept(root: Path, margin: float = 0.05) -> list[float]:
    """Per marked test image: the share of the marker's pixels inside its lung box (the box
    ``data.lung_crop`` cuts, from the same masks: V7 Labs, else the shipped segmenter)."""
    provider = LungMaskProvider(None, use_v7=v7_available())
    kept = []
    for path in list_images(root / "test" / "covid"):
        image = load_image(path)
        left, top, right, bottom = box_of(provider.mask_for(path, image).mask, margin)
        marker = marker_mask(image.size)
        height, width = marker.shape
        inside = marker[int(top * height) : int(np.ceil(bottom * height)),
                        int(left * width) : int(np.ceil(right * width))].sum()  # fmt: skip
        kept.append(float(inside / marker.sum()))
    return kept


def run(data: Path, crop: bool, out: Path) -> dict:
    started = time.perf_counter()
    overrides = [f"data.root={data}", f"data.lung_crop={str(crop).lower()}", *RECIPE]
    result = train(compose_config("train", overrides, str(out / "train")))
    (checkpoint,) = (out / "train" / "checkpoints").glob("best-epoch*.ckpt")
    audited = audit(compose_config("audit", [
        f"ckpt_path={checkpoint}", f"data.root={data}", "explainers.occlusion.window=8",
        "explainers.occlusion.stride=8", "logger=csv", "audit.bootstrap_resamples=500",
        "print_config=false", "data.num_workers=2",
    ], str(out / "audit")))  # fmt: skip
    ablation = audited.ablation
    occlusion = audited.lung_attribution["occlusion"].overall
    return {
        "data": data.name,
        "lung_crop": crop,
        "test_auroc": result.evaluation.auroc,
        "test_auroc_ci": result.evaluation.auroc_ci,
        "audit_intact_auroc": ablation["intact"].auroc,
        "lungs_removed_auroc": ablation["lungs_removed"].auroc,
        "lungs_removed_auroc_ci": ablation["lungs_removed"].auroc_ci,
        "lungs_only_auroc": ablation["lungs_only"].auroc,
        "occlusion_lung_share": occlusion.mean_share,
        "lung_area_share": occlusion.area_share,
        "flags": audited.flags,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cxr-dev"))
    parser.add_argument("--out", type=Path, default=Path("outputs/experiments/lung_crop"))
    args = parser.parse_args()
    planted = plant(args.data, args.out / "planted-cxr-dev", {"train": "covid", "test": "covid"})
    kept = marker_kept(planted)
    rows = [run(data, crop, args.out / f"{data.name}-crop-{crop}")
            for data in (planted, args.data.resolve()) for crop in (False, True)]  # fmt: skip
    summary = {"rows": rows, "marker_share_inside_lung_box": {
        "mean": float(np.mean(kept)), "max": float(np.max(kept)),
        "images_with_any": int(np.sum(np.array(kept) > 0)), "images": len(kept)}}  # fmt: skip
    (args.out / "lung_crop.json").write_text(json.dumps(summary, indent=2))
    columns = ["data", "lung crop", "test AUROC", "lungs removed AUROC", "lungs only AUROC",
               "occlusion lung share / area", "seconds"]  # fmt: skip
    print(table(columns, [
        [r["data"], r["lung_crop"], number(r["test_auroc"]), number(r["lungs_removed_auroc"]),
         number(r["lungs_only_auroc"]),
         f"{number(r['occlusion_lung_share'])} / {number(r['lung_area_share'])}", r["seconds"]]
        for r in rows
    ]))  # fmt: skip
    print(json.dumps(summary["marker_share_inside_lung_box"]))


if __name__ == "__main__":
    main()
