"""Lung-restricted input as the control for shortcuts outside the lungs (issue 13.5).

On a copy of cxr-dev with a marker planted outside the lungs of the COVID images
(:mod:`deepcovid.shortcuts.plant`) and on the real cxr-dev, train the same small model from
scratch on the full image, cropped to the lung box (``data.lung_crop=true``; boxes from the
segmenter for every image, the default, or from any mask: V7 Labs', which only COVID images
have here, else the segmenter's), and blanked outside the lung mask
(``data.outside_lungs=blank``); record the test AUROC, the audit's AUROC with the lungs
removed and with only the lungs, and (planted copy) how much of the marker each box and mask
keeps. Writes ``lung_crop.json`` and prints a Markdown table.

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
from deepcovid.data.samples import list_images
from deepcovid.lungs.crop import box_of, crop_mask_provider, pixel_box
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


def marker_kept(root: Path, masks: str, margin: float = 0.05) -> dict[str, list[float]]:
    """Per marked test image: the share of the marker's pixels inside its lung box (what
    ``data.lung_crop`` keeps) and inside its lung mask (what ``outside_lungs=blank`` keeps)."""
    provider = crop_mask_provider(masks)
    kept: dict[str, list[float]] = {"box": [], "mask": []}
    for path in list_images(root / "test" / "covid"):
        image = load_image(path)
        lungs = provider.mask_for(path, image).mask
        marker = marker_mask(image.size)
        height, width = marker.shape
        left, top, right, bottom = pixel_box(box_of(lungs, margin), width, height)  # as cropped
        in_box = marker[top:bottom, left:right].sum()
        kept["box"].append(float(in_box / marker.sum()))
        kept["mask"].append(float((marker & lungs).sum() / marker.sum()))
    return kept


def run(data: Path, crop: bool, blank: bool, masks: str, out: Path) -> dict:
    """Train and audit on ``data``, its input cropped to the lung box and/or blanked outside
    the lungs, with ``masks``."""
    started = time.perf_counter()
    overrides = [
        f"data.root={data}", f"data.lung_crop={str(crop).lower()}",
        f"data.outside_lungs={'blank' if blank else 'keep'}", f"data.lung_crop_masks={masks}",
        *RECIPE,
    ]  # fmt: skip
    result = train(compose_config("train", overrides, str(out / "train")))
    (checkpoint,) = (out / "train" / "checkpoints").glob("best-epoch*.ckpt")
    audited = audit(compose_config("audit", [
        f"ckpt_path={checkpoint}", f"data.root={data}", "audit.explainers.occlusion.window=8",
        "audit.explainers.occlusion.stride=8", "logger=csv", "audit.bootstrap_resamples=500",
        "print_config=false", "data.num_workers=2",
    ], str(out / "audit")))  # fmt: skip
    ablation = audited.ablation
    occlusion = audited.lung_attribution["occlusion"].overall
    return {
        "data": data.name,
        "input": input_name(crop, blank, masks),
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


def input_name(crop: bool, blank: bool, masks: str) -> str:
    if not (crop or blank):
        return "full image"
    return f"{'lung box' if crop else 'blanked outside the lungs'} ({masks} masks)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cxr-dev"))
    parser.add_argument("--out", type=Path, default=Path("outputs/experiments/lung_crop"))
    args = parser.parse_args()
    planted = plant(args.data, args.out / "planted-cxr-dev", {"train": "covid", "test": "covid"})
    real = args.data.resolve()
    kept = {masks: marker_kept(planted, masks) for masks in ("segmenter", "any")}
    designs = [  # (data, crop to the box, blank outside the lungs, whose masks)
        (planted, False, False, "segmenter"), (planted, True, False, "segmenter"),
        (planted, True, False, "any"), (planted, False, True, "segmenter"),
        (real, False, False, "segmenter"), (real, True, False, "segmenter"),
        (real, False, True, "segmenter"),
    ]  # fmt: skip
    rows = [run(data, crop, blank, masks, args.out / f"{data.name}-{k}")
            for k, (data, crop, blank, masks) in enumerate(designs)]  # fmt: skip
    summary = {"rows": rows, "marker_share_kept": {
        f"{masks} {where}": {"mean": float(np.mean(v)), "max": float(np.max(v)),
                             "images_with_any": int(np.sum(np.array(v) > 0)), "images": len(v)}
        for masks, shares in kept.items() for where, v in shares.items()}}  # fmt: skip
    (args.out / "lung_crop.json").write_text(json.dumps(summary, indent=2))
    columns = ["data", "input", "test AUROC", "lungs removed AUROC", "lungs only AUROC",
               "occlusion lung share / area", "seconds"]  # fmt: skip
    print(table(columns, [
        [r["data"], r["input"], number(r["test_auroc"]), number(r["lungs_removed_auroc"]),
         number(r["lungs_only_auroc"]),
         f"{number(r['occlusion_lung_share'])} / {number(r['lung_area_share'])}", r["seconds"]]
        for r in rows
    ]))  # fmt: skip
    print(json.dumps(summary["marker_share_kept"], indent=1))


if __name__ == "__main__":
    main()
