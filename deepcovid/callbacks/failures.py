"""The failure cases of a finished test (:mod:`deepcovid.results.failures`), drawn with the
tested weights: the model's inputs, their heatmaps (the run's explainer, Grad-CAM when none is
chosen, none with ``failures.heatmaps=false``) and lung contours (the audit's masks: given →
V7 Labs → with ``failures.segmenter=true`` the shipped segmenter; through the model's eval
geometry).

Writes ``failures/failure_cases.csv`` and ``failures/failure_cases.png`` and appends a section
to ``report.md``; the evaluation writer logs the figure with its other plots.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepcovid.data.datamodule import XrayDataModule
from deepcovid.explain.explainers import Explainer, GradCamExplainer
from deepcovid.explain.overlay import to_display
from deepcovid.metrics.summary import Evaluation
from deepcovid.models.classifier import CovidClassifier
from deepcovid.models.ensemble import MeanProbabilityNet
from deepcovid.results.failures import (
    FailureSettings,
    failure_cases,
    failure_figure,
    failure_section,
    failure_threshold,
    figure_title,
)
from deepcovid.shortcuts.masks import AuditMasks, MaskSources
from deepcovid.utils.files import save_figure, write_csv_atomic, write_text_atomic

log = logging.getLogger(__name__)
FOLDER = "failures"


def failure_explainer(
    explainer: Explainer | None, settings: FailureSettings, module: CovidClassifier
) -> Explainer | None:
    """The run's explainer; when it has none, Grad-CAM (none for a mean over networks or
    views, which Grad-CAM cannot explain); none with ``failures.heatmaps=false``."""
    if not settings.heatmaps:
        return None
    if explainer is not None:
        return explainer
    return None if isinstance(module.net, MeanProbabilityNet) else GradCamExplainer()


def lung_masks(
    datamodule: XrayDataModule, rows: pd.DataFrame, settings: FailureSettings, device: str
) -> list[np.ndarray | None]:
    """Each row's lung mask in model-input pixels, None where none is usable (logged)."""
    masks = AuditMasks.of(datamodule, MaskSources(settings.v7, settings.segmenter), device)
    given = rows["lung_mask"] if "lung_mask" in rows else pd.Series(None, index=rows.index)
    found = []
    for path, mask_file in zip(rows["path"], given, strict=True):
        mask = masks(str(path), None if pd.isna(mask_file) else str(mask_file))
        if mask.mask is None:
            log.info("failure cases: no lung contour for %s (%s)", path, mask.problem)
        found.append(None if mask.mask is None else mask.mask.cpu().numpy())
    return found


def write_failures(
    module: CovidClassifier,
    datamodule: XrayDataModule,
    evaluation: Evaluation,
    predictions: pd.DataFrame,
    settings: FailureSettings,
    explainer: Explainer | None,
    output_dir: str | Path,
) -> dict[str, Path]:
    """Write the failure cases of ``predictions``; return the files by kind (the figure as
    ``plot:failure_cases``, for the loggers)."""
    output_dir = Path(output_dir)
    threshold, point = failure_threshold(evaluation, settings.operating_point)
    cases = failure_cases(predictions, threshold, settings.count, point)
    csv = write_csv_atomic(cases, output_dir / FOLDER / "failure_cases.csv")
    written: dict[str, Path] = {"failure_cases": csv}
    explainer = failure_explainer(explainer, settings, module)
    how = "no heatmaps" if explainer is None else f"{explainer.title} heatmaps"
    missing = 0
    if not cases.empty:
        table = datamodule.table
        rows = table.loc[[table.index[table["path"] == p][0] for p in cases["path"]]]
        dataset = datamodule.dataset_of(rows, complete=True)
        images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
        heatmaps = None
        was_training = module.training
        module.eval()
        if explainer is not None:
            heatmaps = list(explainer(module, images.to(module.device)).float().cpu().numpy())
        module.train(was_training)
        masks = lung_masks(datamodule, rows, settings, str(module.device))
        missing = sum(mask is None for mask in masks)
        figure = failure_figure(
            cases, [to_display(image) for image in images], heatmaps, masks,
            figure_title(evaluation.split, threshold, point), settings,
            "" if explainer is None else explainer.colorbar_label,
        )  # fmt: skip
        written["plot:failure_cases"] = save_figure(
            figure, output_dir / FOLDER / "failure_cases.png"
        )
    relative = {"csv": f"{FOLDER}/{csv.name}", "figure": f"{FOLDER}/failure_cases.png"}
    report = output_dir / "report.md"
    section = failure_section(cases, evaluation.split, relative, how, missing)
    write_text_atomic(report.read_text(encoding="utf-8") + section, report)
    log.info("wrote %d failure cases to %s", len(cases), csv)
    return written
