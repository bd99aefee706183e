"""``python -m deepcovid.lungs.train``: train the lung U-Net and evaluate it on held-out
patients (settings in conf/lungs_train.yaml).

Writes to the run directory:

- ``lung_unet.safetensors`` + ``lung_unet.json`` (sha256, shape, split): copy both into
  ``deepcovid/lungs/`` to ship them;
- ``evaluation.json`` (Dice and HD95 per source with patient-bootstrap intervals, training
  time, skipped images) and ``heldout_scores.csv`` (one row per held-out image);
- ``worst_heldout.png`` (the lowest-Dice held-out masks: truth green, prediction red);
- ``unlabelled.png`` + ``unlabelled.csv``: every image of the ``figures.gallery_sources``
  without a mask, with the predicted contours and quality flags.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn import functional as F
from torch.utils.data import DataLoader

from deepcovid.data.io import UnreadableImageError, load_image
from deepcovid.lungs.figures import PREDICTION_COLOUR, TRUTH_COLOUR, Panel, mask_grid
from deepcovid.lungs.labelled import (
    IGNORE,
    LUNG,
    Augmentation,
    ImageRecord,
    LabelledImage,
    WorkingSet,
    heldout_split,
    load_all,
    read_sources,
    working_arrays,
)
from deepcovid.lungs.masks import V7LungMasks
from deepcovid.lungs.model import LungUNet, UNetShape
from deepcovid.lungs.overlap import score_segmenter, summarize
from deepcovid.lungs.segmenter import LungSegmenter
from deepcovid.lungs.weights import WEIGHTS_NAME, save_network
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.files import printable, save_figure, write_csv_atomic, write_json_atomic
from deepcovid.utils.system import available_cpus

log = logging.getLogger(__name__)
GALLERY_COLUMNS = ["path", "source", "label", "lung_area_share", "quality_flag"]


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice on the lung channel, ignored pixels left out."""
    logits = logits[:, 0]
    valid = (target != IGNORE).float()
    lung = (target == LUNG).float()
    bce = F.binary_cross_entropy_with_logits(logits, lung, reduction="none")
    bce = (bce * valid).sum() / valid.sum().clamp_min(1.0)
    prob = torch.sigmoid(logits) * valid
    overlap = (prob * lung).sum(dim=(1, 2))
    total = prob.sum(dim=(1, 2)) + lung.sum(dim=(1, 2))
    soft_dice = (2.0 * overlap + 1.0) / (total + 1.0)
    return bce + (1.0 - soft_dice.mean())


def fit(network: LungUNet, dataset: WorkingSet, cfg: DictConfig) -> list[float]:
    """Train ``network`` in place for ``cfg.epochs``; the mean loss of each epoch."""
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=len(dataset) > cfg.batch_size,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    optimizer = torch.optim.AdamW(network.parameters(), **cfg.optimizer)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.optimizer.lr,
        total_steps=cfg.epochs * len(loader),
        pct_start=cfg.warmup_fraction,
    )
    losses = []
    for epoch in range(cfg.epochs):
        network.train()
        started, total = time.perf_counter(), 0.0
        for images, targets in loader:
            loss = segmentation_loss(network(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(images)
        losses.append(total / len(dataset))
        log.info(
            "epoch %d/%d loss %.4f (%.0f s)",
            epoch + 1,
            cfg.epochs,
            losses[-1],
            time.perf_counter() - started,
        )
    return losses


def worst_panels(
    scores: pd.DataFrame,
    predictions: dict[str, np.ndarray],
    records: list[ImageRecord],
    v7: V7LungMasks | None,
    count: int,
) -> list[Panel]:
    """The ``count`` lowest-Dice held-out images with truth and prediction contours."""
    by_path = {printable(r.path): r for r in records}
    worst = scores.nsmallest(count, "dice")
    chosen = [by_path[p] for p in worst["path"]]
    panels = []
    for item, row in zip(load_all(chosen, v7), worst.itertuples(), strict=True):
        if isinstance(item, LabelledImage):
            contours = [(item.lung, TRUTH_COLOUR), (predictions[row.path], PREDICTION_COLOUR)]
            title = f"{Path(row.path).name[:24]}\nDice {row.dice:.3f}, HD95 {row.hd95_px:.0f} px"
            panels.append(Panel(item.image, contours, title))
    return panels


def unlabelled_gallery(
    segmenter: LungSegmenter, records: list[ImageRecord]
) -> tuple[pd.DataFrame, list[Panel]]:
    """Predicted masks of images without one: a row each (flags) and a panel each."""
    rows, panels = [], []
    for record in records:
        try:
            image = load_image(record.path)
        except UnreadableImageError as error:
            log.warning("skipped: %s", error)
            continue
        result = segmenter.segment(image)
        quality = result.quality
        flag = quality.quality_flag
        rows.append(
            (printable(record.path), record.source, record.label, quality.lung_area_share, flag)
        )
        title = (
            f"{record.path.name[:22]} ({record.label or 'no label'})\n"
            f"area {quality.lung_area_share:.2f}, {quality.n_regions} reg., "
            f"L/R {quality.side_ratio:.2f}{' FLAG' if flag else ''}"
        )
        colour = PREDICTION_COLOUR if flag else "black"
        panels.append(Panel(image, [(result.mask, PREDICTION_COLOUR)], title, colour))
    return pd.DataFrame(rows, columns=GALLERY_COLUMNS), panels


def train_segmenter(cfg: DictConfig) -> dict[str, Any]:
    """Train, save, evaluate and draw; returns what ``evaluation.json`` holds."""
    out = Path(cfg.output_dir)
    torch.set_num_threads(max(1, min(int(cfg.threads), available_cpus())))
    torch.manual_seed(cfg.seed)  # augmentation and network initialisation draw from torch
    v7 = V7LungMasks(cfg.v7_zip) if cfg.use_v7_masks else None
    records = read_sources(dict(cfg.sources), v7)
    labelled = [r for r in records if r.has_mask]
    train_records, heldout_records = heldout_split(labelled, cfg.heldout_fraction, cfg.seed)
    log.info(
        "%d images, %d with a mask: %d train / %d held out (%d / %d patients)",
        len(records),
        len(labelled),
        len(train_records),
        len(heldout_records),
        len({r.group for r in train_records}),
        len({r.group for r in heldout_records}),
    )
    started = time.perf_counter()
    pixels, targets, skipped = working_arrays(train_records, v7, cfg.working_size)
    dataset = WorkingSet(pixels, targets, Augmentation(**cfg.augmentation))
    network = LungUNet(UNetShape(**cfg.model))
    losses = fit(network, dataset, cfg)
    train_seconds = time.perf_counter() - started
    training = {
        "sources": list(cfg.sources),
        "use_v7_masks": bool(cfg.use_v7_masks),
        "seed": int(cfg.seed),
        "heldout_fraction": float(cfg.heldout_fraction),
        "heldout": sorted(printable(r.path.name) for r in heldout_records),
        "n_train_images": len(dataset),
        "epochs": int(cfg.epochs),
        "train_seconds": round(train_seconds, 1),
        "threads": torch.get_num_threads(),
    }
    card = save_network(network, out / WEIGHTS_NAME, cfg.working_size, cfg.threshold, training)
    segmenter = LungSegmenter(network, card.working_size, card.threshold)
    loaded = list(load_all(heldout_records, v7))
    skipped += [item for item in loaded if isinstance(item, str)]
    heldout_items = [item for item in loaded if isinstance(item, LabelledImage)]
    scores, predictions = score_segmenter(segmenter, heldout_items)
    del loaded, heldout_items
    write_csv_atomic(scores, out / "heldout_scores.csv")
    summary = summarize(scores, cfg.bootstrap_resamples, cfg.confidence, cfg.seed)
    figure = mask_grid(
        worst_panels(scores, predictions, heldout_records, v7, cfg.figures.worst),
        columns=min(cfg.figures.columns, cfg.figures.worst),
        suptitle="Lowest-Dice held-out masks (green: V7 truth, red: prediction)",
    )
    save_figure(figure, out / "worst_heldout.png", dpi=cfg.figures.dpi)
    gallery_records = [
        r for r in records if r.source in cfg.figures.gallery_sources and not r.has_mask
    ]
    gallery, panels = unlabelled_gallery(segmenter, gallery_records)
    write_csv_atomic(gallery, out / "unlabelled.csv")
    if panels:
        figure = mask_grid(
            panels,
            columns=cfg.figures.columns,
            suptitle="Images without a mask: predicted lung contours (red), quality flags",
        )
        save_figure(figure, out / "unlabelled.png", dpi=cfg.figures.dpi)
    result = {
        "summary": summary,
        "train_seconds": round(train_seconds, 1),
        "epoch_losses": [round(x, 5) for x in losses],
        "n_train_images": len(dataset),
        "n_heldout_images": len(scores),
        "skipped": skipped,
        "unlabelled_flagged": int((gallery["quality_flag"] != "").sum()),
        "n_unlabelled": len(gallery),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json_atomic(result, out / "evaluation.json")
    log.info("held-out Dice %s; wrote %s", summary["all"]["dice"], out)
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="lungs_train")
def main(cfg: DictConfig) -> None:
    train_segmenter(cfg)


if __name__ == "__main__":
    main()
