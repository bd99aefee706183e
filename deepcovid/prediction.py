"""Predict P(COVID) for new X-rays with a trained checkpoint: what ``python -m deepcovid.predict``
does.

Inputs are a file, a folder (searched recursively) or a CSV with a ``path`` column (relative
paths resolve against the CSV's folder). Unreadable files are reported by name and skipped.
Writes ``predictions.csv`` (``path,prob_covid,predicted_label``) and, with a heatmap method,
one overlay per image under ``heatmaps/``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from deepcovid.data.io import UnreadableImageError, load_image
from deepcovid.data.samples import list_images
from deepcovid.data.transforms import EvalPreset
from deepcovid.explain.explainers import Explainer
from deepcovid.explain.overlay import heatmap_title, overlay_figure, to_display
from deepcovid.models.classifier import CovidClassifier
from deepcovid.models.loading import load_classifier
from deepcovid.models.standalone import ExportedClassifier, load_exported
from deepcovid.utils.files import save_figure, write_csv_atomic

log = logging.getLogger(__name__)
PREDICTION_COLUMNS = ["path", "prob_covid", "predicted_label"]


def list_inputs(inputs: str | Path) -> list[Path]:
    """The image files named by ``inputs``: a file, a folder, or a CSV with a ``path`` column."""
    inputs = Path(inputs)
    if inputs.is_dir():
        files = list_images(inputs)
        if not files:
            raise ValueError(f"inputs={inputs}: the folder holds no images (.png, .jpg, .dcm)")
        return files
    if not inputs.is_file():
        raise FileNotFoundError(f"inputs={inputs}: no such file or folder")
    if inputs.suffix.lower() != ".csv":
        return [inputs]
    frame = pd.read_csv(inputs, dtype=str, keep_default_na=False)
    if "path" not in frame.columns:
        raise ValueError(
            f"inputs={inputs}: the CSV has columns {list(frame.columns)}; it needs a 'path' column"
        )
    return [inputs.parent / p if not Path(p).is_absolute() else Path(p) for p in frame["path"]]


def training_image_size(ckpt_path: str | Path) -> int | None:
    """``data.image_size`` of the run that wrote ``ckpt_path`` (``<run>/checkpoints/x.ckpt``
    next to ``<run>/.hydra/config.yaml``), or None when that config is not there."""
    config = Path(ckpt_path).resolve().parent.parent / ".hydra" / "config.yaml"
    if not config.is_file():
        return None
    size = OmegaConf.select(OmegaConf.load(config), "data.image_size", default=None)
    return int(size) if size is not None else None


def resolve_image_size(image_size: int | None, ckpt_path: str | Path) -> int:
    """The configured ``image_size``, else the training run's; an error when neither is known."""
    if image_size is not None:
        return int(image_size)
    found = training_image_size(ckpt_path)
    if found is None:
        raise ValueError(
            f"image_size=null and no training config found next to {ckpt_path} "
            "(<run>/.hydra/config.yaml): pass image_size=N, the data.image_size the model "
            "was trained with"
        )
    return found


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def load_batch(paths: Sequence[Path], transform: EvalPreset) -> tuple[list[Path], list]:
    """The readable ``paths`` and their transformed images; unreadable ones are logged."""
    kept, images = [], []
    for path in paths:
        try:
            images.append(transform(load_image(path)))
            kept.append(path)
        except UnreadableImageError as error:
            log.warning("skipped: %s", error)
    return kept, images


def predict_files(
    classifier: CovidClassifier | ExportedClassifier,
    paths: Sequence[Path],
    transform: EvalPreset,
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
    device = next(classifier.parameters()).device
    root = Path(os.path.commonpath([p.resolve().parent for p in paths])) if paths else Path()
    records, skipped = [], []
    for chunk in chunks(paths, batch_size):
        kept, images = load_batch(chunk, transform)
        skipped += [p for p in chunk if p not in kept]
        if not kept:
            continue
        batch = torch.stack(images).to(device)
        with torch.inference_mode():
            probs = classifier.prob_covid(batch).float().cpu().tolist()
        records += [
            (str(p), prob, int(prob >= threshold)) for p, prob in zip(kept, probs, strict=True)
        ]
        if explainer is None:
            continue
        heatmaps = explainer(classifier, batch).float().cpu().numpy()
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
    return pd.DataFrame(records, columns=PREDICTION_COLUMNS), skipped


def load_model(
    ckpt_path: str | Path, image_size: int | None, crop_ratio: float
) -> tuple[CovidClassifier | ExportedClassifier, float, EvalPreset]:
    """(model, its threshold, its eval transform) from a Lightning checkpoint, or from a
    ``.safetensors`` export (``python -m deepcovid.export``), read without Lightning or pickle
    with the preprocessing recorded beside it."""
    if Path(ckpt_path).suffix == ".safetensors":
        exported = load_exported(ckpt_path)
        transform = exported.eval_transform
        if image_size is not None:
            transform = EvalPreset(image_size, crop_ratio)
        return exported, exported.threshold, transform
    classifier = load_classifier(ckpt_path)
    transform = EvalPreset(resolve_image_size(image_size, ckpt_path), crop_ratio)
    return classifier, float(classifier.hparams.threshold), transform


def predict(cfg: DictConfig) -> Path:
    """Load the checkpoint or export, predict every input, write ``predictions.csv``
    (+ heatmaps)."""
    paths = list_inputs(cfg.inputs)
    classifier, model_threshold, transform = load_model(
        cfg.ckpt_path, cfg.image_size, cfg.crop_ratio
    )
    classifier = classifier.to(resolve_device(cfg.device))
    threshold = cfg.threshold if cfg.threshold is not None else model_threshold
    heatmap = cfg.get("heatmap") or {}
    explainer = hydra.utils.instantiate(heatmap["explainer"]) if "explainer" in heatmap else None
    output_dir = Path(cfg.paths.output_dir)
    frame, skipped = predict_files(
        classifier,
        paths,
        transform,
        float(threshold),
        cfg.batch_size,
        explainer,
        output_dir / "heatmaps",
        heatmap.get("cmap", "jet"),
        heatmap.get("alpha", 0.5),
    )
    written = write_csv_atomic(frame, output_dir / "predictions.csv")
    log.info("wrote %d predictions to %s", len(frame), written)
    if skipped:
        log.warning("%d unreadable input(s) skipped: %s", len(skipped), [str(p) for p in skipped])
    return written
