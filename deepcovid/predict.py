"""``python -m deepcovid.predict ckpt_path=FILE inputs=PATH [explainer=occlusion|gradcam]``:
P(COVID) for new X-rays. See conf/predict.yaml.

``ckpt_path`` is a checkpoint of ``python -m deepcovid.train`` or a ``.safetensors`` export
(``python -m deepcovid.export``); either carries its preprocessing and thresholds, so a model
copied alone to another machine predicts what it predicted where it was trained. Inputs are a
file, a folder (searched recursively) or a CSV with a ``path`` column (relative paths resolve
against the CSV's folder). Unreadable files are reported by name and skipped. Writes
``predictions.csv`` (:data:`PREDICT_COLUMNS`) and, with an explainer, one overlay per image
under ``heatmaps/``. With ``dicom_output=true``, each DICOM input also gets a Comprehensive SR
and (with an explainer) a Secondary Capture of its overlay under ``dicom/``
(:mod:`deepcovid.dicom`), listed with every header repair in ``dicom/results.json``; with
``dicom_lung_seg=true`` (the default) also a Segmentation of its lung mask (the one the model
read it with when its preprocessing uses lung masks; else the V7 Labs mask or the shipped
segmenter's, :func:`lung_mask_provider`), named in the SR's evidence.

Several checkpoints (``ckpt_path=[a,b]``, or a run or multirun folder: its best checkpoints)
and ``tta=[hflip,crop]`` make one model whose P(COVID) is the mean of the members'
probabilities over every checkpoint × view (:mod:`deepcovid.models.ensemble`); ``model.json``
beside ``predictions.csv`` records the members, their sha256, the views, the threshold and where
it was chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
import torch
from matplotlib.figure import Figure
from omegaconf import MISSING, DictConfig
from PIL import Image

from deepcovid.data.io import DICOM_SUFFIXES, UnreadableImageError, load_image
from deepcovid.data.samples import list_inputs
from deepcovid.data.transforms import EvalPreset
from deepcovid.dicom.repair import InvalidSourceError
from deepcovid.dicom.results import DicomResults, write_dicom_results
from deepcovid.dicom.segmentation import AUTOMATIC_ORIGIN, LungMaskSource
from deepcovid.dicom.structured_report import AlgorithmInfo
from deepcovid.explain.explainers import Explainer
from deepcovid.explain.overlay import figure_rgb, heatmap_title, overlay_figure, to_display
from deepcovid.lungs.crop import LungCropReader, crop_mask_provider
from deepcovid.lungs.provider import LungMaskProvider
from deepcovid.lungs.weights import read_card
from deepcovid.metrics.threshold_selection import SELECTION_RULES
from deepcovid.models.ensemble import Model, checkpoint_paths, load_combined
from deepcovid.models.record import ModelRecord
from deepcovid.models.tta import DEFAULT_CROP_FRACTION
from deepcovid.results.names import RULE_TEXT
from deepcovid.scope.check import IN_SCOPE_VERDICT, ScopeChecker, load_checker
from deepcovid.utils.choices import checked_choice, choices
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.files import (
    common_folder,
    flat_name,
    save_figure,
    sha256_of,
    write_csv_atomic,
    write_json_atomic,
)
from deepcovid.utils.system import resolve_device, strict_float32

log = logging.getLogger(__name__)
PREDICT_COLUMNS = ["path", "prob_covid", "predicted_label", "in_scope", "scope_reason"]
OUT_OF_SCOPE = ("skip", "score")  # predict.out_of_scope: no call, or scored anyway
OutOfScope = choices("OutOfScope", OUT_OF_SCOPE)
# predict.operating_point: the model's default threshold or a rule chosen on val in training
PREDICT_POINTS = ("fixed", *SELECTION_RULES)
PredictPoint = choices("PredictPoint", PREDICT_POINTS)


@dataclass
class PredictConfig:
    """``conf/predict.yaml``'s schema (registered in ``deepcovid.conf``): Hydra checks each key's
    type, and ``operating_point`` and ``out_of_scope`` against their choices, when it composes
    the config (the yaml gives the values)."""

    explainer: Any = MISSING
    paths: Any = MISSING
    task_name: str = MISSING
    ckpt_path: Any = MISSING  # a checkpoint, a list of them or a folder
    inputs: Any = MISSING
    operating_point: PredictPoint = MISSING
    threshold: float | None = MISSING
    batch_size: int = MISSING
    tta: list[str] = MISSING
    tta_crop_fraction: float = MISSING
    scope_check: bool = MISSING
    out_of_scope: OutOfScope = MISSING
    dicom_output: bool = MISSING
    dicom_lung_seg: bool = MISSING
    device: str = MISSING
    heatmaps: Any = MISSING


SEGMENTER_NAME = "deepcovid lung segmenter"


def load_model(
    ckpt_path: str | Path | Sequence[str | Path],
    tta: Sequence[str] = (),
    crop_fraction: float = DEFAULT_CROP_FRACTION,
) -> Model:
    """The model of Lightning checkpoints or ``.safetensors`` exports (read without Lightning or
    pickle), with its record: one file as it is, several (or ``tta``) as their mean P(COVID)."""
    return load_combined(ckpt_path, tta, crop_fraction)


def model_summary(model: Model, ckpt_path: Any, threshold: float, described: str) -> dict:
    """What ``model.json`` says of the model behind the predictions."""
    combination = model.record.combination
    if combination is None:
        (path,) = checkpoint_paths(ckpt_path)
        summary = {"checkpoints": [str(path)], "sha256": [sha256_of(path)], "tta": []}
    else:
        summary = combination.to_dict()
    return summary | {"threshold": threshold, "operating_point": described}


def weights_sha256(model: Model, ckpt_path: Any) -> str:
    """The digest the DICOM results identify the model by: the file's, or the combination's."""
    combination = model.record.combination
    if combination is None:
        return sha256_of(checkpoint_paths(ckpt_path)[0])
    return combination.weights_sha256


@dataclass
class DicomOutput:
    """DICOM results for the DICOM inputs: SR (+ overlay SC, + lung mask SEG with ``lungs``)
    per image in ``directory``."""

    directory: Path
    operating_point: str  # where the threshold comes from, in words (written in the SR)
    algorithm: AlgorithmInfo
    lungs: LungMaskProvider | None = None
    written: list[DicomResults] = field(default_factory=list)
    not_dicom: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unreadable: list[Path] = field(default_factory=list)  # DICOM inputs that did not decode
    no_segmentation: dict[str, str] = field(default_factory=dict)  # SR written, no SEG: why

    def lung_mask(self, path: Path) -> LungMaskSource | None:
        """The lung mask of ``path`` for its SEG; None (the reason kept) when none is found."""
        try:
            found = self.lungs.mask_for(path)
        except (UnreadableImageError, ValueError) as error:
            log.warning("no lung mask SEG for %s: %s", path, error)
            self.no_segmentation[str(path)] = str(error)
            return None
        segmenter = None
        if found.origin == AUTOMATIC_ORIGIN:
            weights = self.lungs.weights
            segmenter = AlgorithmInfo(read_card(weights).sha256, name=SEGMENTER_NAME)
        return LungMaskSource(found.mask, found.origin, segmenter)

    def add(
        self,
        path: Path,
        name: str,
        prob_covid: float | None,
        threshold: float,
        overlay: Figure | None,
        scope_reason: str = "",
    ) -> None:
        """Results for ``path``, written as ``<name>.sr.dcm`` (+ ``<name>.overlay.dcm``,
        ``<name>.seg.dcm``); with a ``scope_reason``, an SR saying "not assessed" and why (and
        no SEG: the image is not a chest radiograph)."""
        if path.suffix.lower() not in DICOM_SUFFIXES:
            self.not_dicom.append(path)
            return
        rgb = None if overlay is None else figure_rgb(overlay)
        lungs = None if self.lungs is None or scope_reason else self.lung_mask(path)
        try:
            self.written.append(write_dicom_results(
                path, prob_covid, threshold, self.operating_point, rgb, self.algorithm,
                self.directory, name, scope_reason, lungs,
            ))  # fmt: skip
        except InvalidSourceError as error:
            log.warning("no DICOM results: %s", error)
            self.failed[str(path)] = str(error)

    def skip(self, path: Path) -> None:
        """``path`` could not be read: listed when it is a DICOM input."""
        if path.suffix.lower() in DICOM_SUFFIXES:
            self.unreadable.append(path)

    def summary(self) -> dict:
        return {
            "written": [result.to_dict() for result in self.written],
            "not_dicom": [str(p) for p in self.not_dicom],
            "failed": self.failed,
            "unreadable": [str(p) for p in self.unreadable],
            "no_segmentation": self.no_segmentation,
        }


def lung_mask_provider(model: Model) -> LungMaskProvider:
    """Where the lung masks of the SEGs come from: the masks the model reads its input with
    when its preprocessing uses them (found again, the same way), else any (V7 Labs by file
    name when installed, else the shipped segmenter)."""
    preprocessing = model.record.preprocessing
    return crop_mask_provider(
        preprocessing.lung_crop_masks if preprocessing.uses_lung_masks else "any"
    )


def operating_point_text(record: ModelRecord, rule: str, threshold: float, given: bool) -> str:
    """Where the threshold comes from, in words, as the SR states it."""
    if given:
        return f"threshold {threshold:g} given at prediction"
    if rule == "fixed":
        return f"fixed threshold {threshold:g} (model.threshold)"
    target = record.operating_points[rule]["target"] or 0.0
    chosen = f"{RULE_TEXT[rule].format(target=100 * target)}: threshold {threshold:.4g}"
    if record.combination is not None:
        chosen += f", chosen on {record.combination.thresholds_from}"
    return chosen


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
    cmap: str | None = None,
    alpha: float = 0.5,
    dicom: DicomOutput | None = None,
    scope: ScopeChecker | None = None,
    out_of_scope: str = "skip",
) -> tuple[pd.DataFrame, list[Path]]:
    """Predictions for the readable ``paths`` (and overlays in ``heatmap_dir`` when an
    ``explainer`` is given, DICOM results with ``dicom``); returns the frame and the skipped
    paths. An error when no input is readable.

    With ``scope``, each image gets ``in_scope`` and ``scope_reason``; an out-of-scope image
    gets no P(COVID), no call, no heatmap and a "not assessed" SR unless ``out_of_scope`` is
    ``score``. Without, every image counts as in scope."""
    out_of_scope = checked_choice("out_of_scope", out_of_scope, OutOfScope)
    device = next(model.parameters()).device
    preprocessing = model.record.preprocessing
    transform = EvalPreset(preprocessing)
    read = load_image
    if preprocessing.uses_lung_masks:
        read = LungCropReader(
            preprocessing.lung_margin, preprocessing.lung_crop_masks, preprocessing.lung_crop,
            preprocessing.outside_lungs == "blank",
        )  # fmt: skip
    root = common_folder(paths)
    records, skipped = [], []
    for chunk in chunks(paths, batch_size):
        kept, images = load_batch(chunk, transform, read)
        unread = [p for p in chunk if p not in kept]
        skipped += unread
        if dicom is not None:
            for path in unread:
                dicom.skip(path)
        if not kept:
            continue
        verdicts = [IN_SCOPE_VERDICT] * len(kept)
        if scope is not None:
            found, _ = scope.check_paths(kept)
            verdicts = [found.get(p, IN_SCOPE_VERDICT) for p in kept]
        scored = [v.in_scope or out_of_scope == "score" for v in verdicts]
        batch = torch.stack(images).to(device)
        with torch.inference_mode(), strict_float32(device.type):
            probs = model.prob_covid(batch).cpu().tolist()
        records += [
            (str(p), prob, int(prob >= threshold), v.in_scope, v.reason)
            if score
            else (str(p), None, None, False, v.reason)
            for p, prob, v, score in zip(kept, probs, verdicts, scored, strict=True)
        ]
        figures: list[Figure | None] = [None] * len(kept)
        if explainer is not None:
            heatmaps = explainer(model, batch).float().cpu().numpy()
            for k, (path, image, heatmap, prob) in enumerate(
                zip(kept, batch, heatmaps, probs, strict=True)
            ):
                if not scored[k]:
                    continue
                title = heatmap_title(prob, threshold, name=path.name)
                figures[k] = overlay_figure(
                    to_display(image), heatmap, title, cmap, alpha, explainer.colorbar_label
                )
                save_figure(figures[k], heatmap_dir / f"{flat_name(path, root)}.png")
        if dicom is not None:
            for path, prob, figure, v, score in zip(
                kept, probs, figures, verdicts, scored, strict=True
            ):
                reason = "" if score else v.reason
                dicom.add(path, flat_name(path, root), prob, threshold, figure, reason)
    if not records:
        raise ValueError(
            f"none of the {len(paths)} inputs could be read as an X-ray (see the warnings above)"
        )
    frame = pd.DataFrame(records, columns=PREDICT_COLUMNS)
    frame["prob_covid"] = frame["prob_covid"].astype(float)
    frame["predicted_label"] = frame["predicted_label"].astype("Int64")
    return frame, skipped


def predict(cfg: DictConfig) -> Path:
    """Load the checkpoint or export, predict every input, write ``predictions.csv``
    (+ heatmaps)."""
    paths = list_inputs(cfg.inputs)
    model = load_model(cfg.ckpt_path, cfg.tta, cfg.tta_crop_fraction)
    model = model.to(resolve_device(cfg.device))
    if model.record.combination is not None:
        log.info(model.record.combination.describe())
    rule = checked_choice("operating_point", cfg.operating_point, PredictPoint)
    threshold = model.record.threshold_of(rule)
    if cfg.threshold is not None:
        threshold = float(cfg.threshold)
    log.info("COVID when P(COVID) ≥ %.4g (operating point %s)", threshold, rule)
    explainer = hydra.utils.instantiate(cfg.explainer) if cfg.get("explainer") else None
    output_dir = Path(cfg.paths.output_dir)
    described = operating_point_text(model.record, rule, threshold, cfg.threshold is not None)
    dicom = None
    if cfg.dicom_output:
        if explainer is None:
            log.warning(
                "dicom_output without an explainer: SRs only (explainer=gradcam adds overlays)"
            )
        algorithm = AlgorithmInfo(weights_sha256(model, cfg.ckpt_path))
        dicom = DicomOutput(output_dir / "dicom", described, algorithm)
    if dicom is not None and cfg.dicom_lung_seg:
        dicom.lungs = lung_mask_provider(model)
    frame, skipped = predict_files(
        model,
        paths,
        threshold,
        cfg.batch_size,
        explainer,
        output_dir / "heatmaps",
        cfg.heatmaps.cmap,
        cfg.heatmaps.alpha,
        dicom,
        load_checker() if cfg.scope_check else None,
        cfg.out_of_scope,
    )
    written = write_csv_atomic(frame, output_dir / "predictions.csv")
    summary = model_summary(model, cfg.ckpt_path, threshold, described)
    write_json_atomic(summary, output_dir / "model.json")
    log.info("wrote %d predictions to %s", len(frame), written)
    outside = frame[frame["scope_reason"] != ""]
    if len(outside):
        action = "scored anyway" if cfg.out_of_scope == "score" else "not assessed (no call)"
        log.warning(
            "%d input(s) are not frontal chest radiographs, %s (out_of_scope=%s):\n%s",
            len(outside), action, cfg.out_of_scope,
            "\n".join(f"  {row.path}: {row.scope_reason}" for row in outside.itertuples()),
        )  # fmt: skip
    if skipped:
        log.warning("%d unreadable input(s) skipped: %s", len(skipped), [str(p) for p in skipped])
    if dicom is not None:
        listed = write_json_atomic(
            dicom.summary() | {"model": summary}, output_dir / "dicom" / "results.json"
        )
        log.info(
            "DICOM results for %d input(s) in %s; %d not DICOM, %d failed, %d unreadable (see %s)",
            len(dicom.written), listed.parent, len(dicom.not_dicom), len(dicom.failed),
            len(dicom.unreadable), listed,
        )  # fmt: skip
        if dicom.lungs is not None and dicom.not_dicom:
            log.info(
                "no lung mask SEG for the %d non-DICOM input(s): a DICOM Segmentation must "
                "reference its source image, which only a DICOM input has",
                len(dicom.not_dicom),
            )
    return written


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # one INFO line per copied module
    predict(cfg)


if __name__ == "__main__":
    import deepcovid.conf  # noqa: F401  (registers the schemas, also for --config-path DIR)

    main()
