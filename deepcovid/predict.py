"""``python -m deepcovid.predict ckpt_path=FILE inputs=PATH [explainer=occlusion|gradcam]``:
P(COVID) for new X-rays. See conf/predict.yaml.

``ckpt_path`` is a checkpoint of ``python -m deepcovid.train`` or a ``.safetensors`` export
(``python -m deepcovid.export``); either carries its preprocessing and thresholds, so a model
copied alone to another machine predicts what it predicted where it was trained. Inputs are a
file, a folder (searched recursively) or a CSV with a ``path`` column (relative paths resolve
against the CSV's folder). Unreadable files are reported by name and skipped. Writes
``predictions.csv`` (:data:`PREDICT_COLUMNS`) and, with an explainer, one overlay per image
under ``heatmaps/``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig
from PIL import Image

from deepcovid.data.io import UnreadableImageError, load_image
from deepcovid.data.lung_crop import LungCropReader
from deepcovid.data.samples import list_inputs
from deepcovid.data.transforms import EvalPreset
from deepcovid.explain.explainers import Explainer
from deepcovid.explain.overlay import heatmap_title, overlay_figure, to_display
from deepcovid.models.checkpoints import load_classifier
from deepcovid.models.classifier import CovidClassifier
from deepcovid.models.exported import ExportedClassifier, load_exported
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.files import save_figure, write_csv_atomic
from deepcovid.utils.system import resolve_device

log = logging.getLogger(__name__)
PREDICT_COLUMNS = ["path", "prob_covid", "predicted_label"]
Model = CovidClassifier | ExportedClassifier


def load_model(ckpt_path: str | Path) -> Model:
    """The model of a Lightning checkpoint, or of a ``.safetensors`` export read without
    Lightning or pickle; either way with its record."""
    if Path(ckpt_path).suffix == ".safetensors":
        return load_exported(ckpt_path)
    return load_classifier(ckpt_path)


def heatmap_name(path: Path, root: Path) -> str:
    """A flat, unique PNG name for ``path``: its path below ``root`` with ``__`` separators."""
    try:
        parts = path.resolve().relative_to(root).parts
    except ValueError:
        parts = (path.name,)
    return "__".join(parts) + ".png"


def chunks(items: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_batch(
    paths: Sequence[Path], transform: EvalPreset, read: Callable[[Path], Image.Image]
) -> tuple[list[Path], list]:
    """The readable ``paths`` and their transformed images; unreadable ones are logged."""
    kept, images = [], []
    for path in paths:
        try:
            images.append(transform(read(path)))
            kept.append(path)
        except (UnreadableImageError, ValueError) as error:
            log.warning("skipped: %s", error)
    return kept, images


def predict_files(
    model: Model,
    paths: Sequence[Path],
    threshold: float,
    batch_size: int = 16,
    explainer: Explainer | None = None,
    heatmap_dir: Path | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
) -> tuple[pd.DataFrame, list[Path]]:
    """Predictions for the readable ``paths`` (and overlays in ``heatmap_dir`` when an
    ``explainer`` is given); returns the frame and the skipped paths. An error when no input
    is readable."""
    device = next(model.parameters()).device
    preprocessing = model.record.preprocessing
    transform = EvalPreset(preprocessing)
    read = LungCropReader(preprocessing.lung_margin) if preprocessing.lung_crop else load_image
    root = Path(os.path.commonpath([p.resolve().parent for p in paths])) if paths else Path()
    records, skipped = [], []
    for chunk in chunks(paths, batch_size):
        kept, images = load_batch(chunk, transform, read)
        skipped += [p for p in chunk if p not in kept]
        if not kept:
            continue
        batch = torch.stack(images).to(device)
        with torch.inference_mode():
            probs = model.prob_covid(batch).cpu().tolist()
        records += [
            (str(p), prob, int(prob >= threshold)) for p, prob in zip(kept, probs, strict=True)
        ]
        if explainer is None:
            continue
        heatmaps = explainer(model, batch).float().cpu().numpy()
        for path, image, heatmap, prob in zip(kept, batch, heatmaps, probs, strict=True):
            title = heatmap_title(prob, threshold, name=path.name)
            figure = overlay_figure(
                to_display(image), heatmap, title, cmap, alpha, explainer.colorbar_label
            )
            save_figure(figure, heatmap_dir / heatmap_name(path, root))
    if not records:
        raise ValueError(
            f"none of the {len(paths)} inputs could be read as an X-ray (see the warnings above)"
        )
    return pd.DataFrame(records, columns=PREDICT_COLUMNS), skipped


def predict(cfg: DictConfig) -> Path:
    """Load the checkpoint or export, predict every input, write ``predictions.csv``
    (+ heatmaps)."""
    paths = list_inputs(cfg.inputs)
    model = load_model(cfg.ckpt_path).to(resolve_device(cfg.device))
    threshold = model.record.threshold_of(cfg.operating_point)
    if cfg.threshold is not None:
        threshold = float(cfg.threshold)
    log.info("COVID when P(COVID) ≥ %.4g (operating point %s)", threshold, cfg.operating_point)
    explainer = hydra.utils.instantiate(cfg.explainer) if cfg.get("explainer") else None
    output_dir = Path(cfg.paths.output_dir)
    frame, skipped = predict_files(
        model,
        paths,
        threshold,
        cfg.batch_size,
        explainer,
        output_dir / "heatmaps",
        cfg.heatmaps.cmap,
        cfg.heatmaps.alpha,
    )
    written = write_csv_atomic(frame, output_dir / "predictions.csv")
    log.info("wrote %d predictions to %s", len(frame), written)
    if skipped:
        log.warning("%d unreadable input(s) skipped: %s", len(skipped), [str(p) for p in skipped])
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
