"""One audit of one split of a model: measure, summarize, write ``audit/`` and log it. Shared by
``python -m deepcovid.audit`` and the test-time callback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger, MLFlowLogger, WandbLogger

from deepcovid.data.datamodule import XrayDataModule
from deepcovid.explain.explainers import Explainer
from deepcovid.models.record import ModelRecord
from deepcovid.shortcuts.confounders import confounder_columns, probe_confounders
from deepcovid.shortcuts.figures import (
    contour_grid_figure,
    panel_titles,
    sanity_figure,
    share_distribution_figure,
)
from deepcovid.shortcuts.flags import with_findings
from deepcovid.shortcuts.masks import AuditMasks, MaskSources
from deepcovid.shortcuts.measure import Audited, measure
from deepcovid.shortcuts.report import audit_report
from deepcovid.shortcuts.result import AuditResult, AuditSettings, summarize_audit
from deepcovid.shortcuts.sanity import with_sanity_checks
from deepcovid.utils.files import (
    save_figure,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)
from deepcovid.utils.mlflow_logger import log_files, log_scalars
from deepcovid.utils.tracking import scalars

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditPlan:
    """What an audit runs (the ``audit`` config group, ``conf/audit/``): the explainers scored
    against the lungs, where masks come from, and the audit's knobs."""

    explainers: Mapping[str, Explainer] = field(default_factory=dict)
    masks: MaskSources = field(default_factory=MaskSources)
    settings: AuditSettings = field(default_factory=AuditSettings)


def audit_plan(
    explainers: Mapping[str, Explainer | None], masks: Mapping[str, bool], **settings: Any
) -> AuditPlan:
    """An :class:`AuditPlan` from the ``audit`` group; explainers set to null are left out."""
    return AuditPlan(
        {name: e for name, e in explainers.items() if e is not None},
        MaskSources(**masks),
        AuditSettings(**settings),
    )


def model_thresholds(record: ModelRecord) -> dict[str, float]:
    """The model's own threshold and every operating point chosen on val in training."""
    chosen = {n: p["threshold"] for n, p in record.operating_points.items() if p["threshold"]}
    return {"fixed": record.threshold, **chosen}


def log_audit(loggers: list[Logger], result: AuditResult, figures: dict[str, Path]) -> None:
    """The audit's numbers to every logger, its figures and findings to W&B (to MLflow: the
    figures as artifacts under ``audit/figures``)."""
    summary = {f"audit/{key}": value for key, value in result.scalars().items()}
    log_files(loggers, figures.values(), "audit/figures")
    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            log_scalars(logger, scalars(summary))
            continue
        if not isinstance(logger, WandbLogger):
            logger.log_metrics(scalars(summary))
            logger.save()
            continue
        logger.experiment.summary.update(summary | {"audit/findings": result.flags})
        logger.log_image("audit/figures", [str(p) for p in figures.values()], caption=list(figures))


def run_audit(
    model: Audited,
    record: ModelRecord,
    datamodule: XrayDataModule,
    split: str,
    plan: AuditPlan,
    output_dir: str | Path,
    checkpoint: str | None = None,
    loggers: list[Logger] = (),
) -> AuditResult:
    """Audit ``split`` as ``plan`` says and write ``audit.json``, ``images.csv``, ``report.md``
    and ``figures/`` under ``output_dir``."""
    output_dir = Path(output_dir)
    explainers, settings = plan.explainers, plan.settings
    device = str(next(model.net.parameters()).device)
    masks = AuditMasks.of(datamodule, plan.masks, device)
    table = datamodule.split(split)
    columns, _ = confounder_columns(table, settings.confounders)  # a named column it lacks: refused
    dataset = datamodule.dataset(split, complete=True)  # fed to the network directly
    measured = measure(
        model, dataset, table, masks, explainers, settings.baseline,
        settings.batch_size, settings.panel_size, settings.seed,
    )  # fmt: skip
    images = measured.images  # images out of scope (kept by data.out_of_scope=keep) named
    images["scope_reason"] = images["path"].map(datamodule.not_frontal).fillna("")
    images["in_scope"] = images["scope_reason"] == ""
    for column in columns:  # the rows of measure's table are the split's, in order
        images[column] = table[column].to_numpy()
    images, probes = probe_confounders(images, measured.features, columns, settings.seed)
    methods = {name: explainer.colorbar_label for name, explainer in explainers.items()}
    titles = {name: explainer.title for name, explainer in explainers.items()}
    result = summarize_audit(
        images, probes, methods, model_thresholds(record), record.threshold,
        settings, split, record.backbone, checkpoint, titles,
    )  # fmt: skip
    result = with_findings(result)
    if settings.sanity is not None and explainers:
        result = with_sanity_checks(result, model, dataset, table, explainers, settings)
    write_json_atomic(result.to_json(), output_dir / "audit.json")
    write_csv_atomic(images, output_dir / "images.csv")
    figures = {
        "lung_share": save_figure(
            share_distribution_figure(images, titles),
            output_dir / "figures" / "lung_share.png",
        ),
        "overlays": save_figure(
            contour_grid_figure(measured.panel, titles, panel_titles(measured.panel, images)),
            output_dir / "figures" / "overlays.png",
        ),
    }
    if result.sanity:
        figures["sanity"] = save_figure(
            sanity_figure(result.sanity, result.titles), output_dir / "figures" / "sanity.png"
        )
    write_text_atomic(audit_report(result), output_dir / "report.md")
    log_audit(list(loggers), result, figures)
    log.info("audit of %d %s images written to %s", len(table), split, output_dir)
    return result
