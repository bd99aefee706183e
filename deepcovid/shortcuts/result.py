"""The audit's result as one typed object: lung attribution per method (overall, by class,
correctness and source), lung ablation, the confounder audit, the masks used, and the
findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepcovid import CLASS_NAMES
from deepcovid.explain.sanity import SanityCheck, SanitySettings
from deepcovid.metrics.operating_points import Scalar
from deepcovid.shortcuts.ablation import (
    AblationResult,
    Retained,
    retained_discrimination,
    summarize_ablation,
)
from deepcovid.shortcuts.attribution import LungAttribution, summarize_attribution
from deepcovid.shortcuts.confounders import Confounder, audit_confounder, confounder_columns
from deepcovid.shortcuts.masks import REFUSED
from deepcovid.shortcuts.probe import GroupProbe
from deepcovid.utils.serialize import from_jsonable, to_jsonable


@dataclass(frozen=True)
class AuditSettings:
    """The audit's knobs (``conf/audit.yaml``: ``audit.*``), and the thresholds of its flags."""

    batch_size: int = 16
    baseline: float = 0.0  # what removed pixels become, in normalised input units (0 = mean)
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    panel_size: int = 12
    retained_discrimination: float = 0.5  # flag: the lungs removed, the interval of the share
    # of AUROC − 0.5 kept reaches this at its lower end
    share_over_area: float = 1.0  # flag: lung share / lung area at or below this (1 = uniform)
    probe_margin: float = 0.1  # flag: probe accuracy this far above the better of the
    # majority rate and the label alone
    sanity: SanitySettings | None = field(default_factory=SanitySettings)  # None: not checked
    confounders: Sequence[str] | None = None  # None: each of DEFAULT_CONFOUNDERS the data has

    def __post_init__(self) -> None:
        if self.confounders is not None:
            object.__setattr__(self, "confounders", tuple(str(c) for c in self.confounders))


@dataclass(frozen=True)
class MethodAttribution:
    """One heatmap method: over every image with a mask, and by group."""

    overall: LungAttribution
    by_class: dict[str, LungAttribution] = field(default_factory=dict)
    by_correct: dict[str, LungAttribution] = field(default_factory=dict)
    by_source: dict[str, LungAttribution] = field(default_factory=dict)


@dataclass(frozen=True)
class MaskSummary:
    """Which masks the audit used: how many images had one, where they came from, and the
    images without one (with the reason) or with a quality flag."""

    n_images: int
    n_with_mask: int
    by_origin: dict[str, int]
    missing: dict[str, str] = field(default_factory=dict)
    flagged: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditResult:
    """Everything ``audit/audit.json`` holds."""

    split: str
    backbone: str
    checkpoint: str | None
    methods: dict[str, str]  # name → what its map explains
    masks: MaskSummary
    lung_attribution: dict[str, MethodAttribution]
    ablation: dict[str, AblationResult] | None
    confounders: dict[str, Confounder]  # column → its confounder audit
    flags: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    confidence: float = 0.95  # of every interval in it
    retained: Retained | None = None  # intact − lungs removed (paired), when intact > 0.5
    settings: AuditSettings = field(default_factory=AuditSettings)  # the flags' thresholds
    sanity: dict[str, SanityCheck] = field(default_factory=dict)  # heatmap sanity checks
    out_of_scope: dict[str, str] = field(default_factory=dict)  # path → why not a frontal CXR
    titles: dict[str, str] = field(default_factory=dict)  # method → its explainer's title

    def title(self, method: str) -> str:
        """How ``method`` is named in words (its explainer's ``title``; older files: the key)."""
        return self.titles.get(method, method)

    def scalars(self) -> dict[str, Scalar]:
        """The audit's headline numbers as flat keys (for loggers): per ablation variant its
        AUROC, per method its lung share, share over area and pointing hit rate, per
        confounder Cramér's V, balanced AUROC and probe accuracy, and the number of flags."""
        values: dict[str, Scalar] = {}
        for variant, ablated in (self.ablation or {}).items():
            values[f"{variant}/auroc"] = ablated.auroc
        for method, attribution in self.lung_attribution.items():
            a = attribution.overall
            values |= {
                f"{method}/lung_share": a.mean_share,
                f"{method}/share_over_area": a.share_over_area,
                f"{method}/pointing_hit_rate": a.pointing_hit_rate,
            }
        for column, c in self.confounders.items():
            values |= {
                f"{column}/cramers_v": c.cramers_v,
                f"{column}/balanced_auroc": c.balanced_auroc,
                f"{column}/probe_accuracy": None if c.probe is None else c.probe.accuracy,
            }
        values["flags"] = len(self.flags)
        return values

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditResult:
        return from_jsonable(cls, data)


def mask_summary(images: pd.DataFrame) -> MaskSummary:
    has_mask = images["lung_area_share"].notna()
    return MaskSummary(
        n_images=len(images),
        n_with_mask=int(has_mask.sum()),
        by_origin={
            k: int(v) for k, v in images.loc[has_mask, "mask_source"].value_counts().items()
        },
        missing=dict(
            zip(images.loc[~has_mask, "path"], images.loc[~has_mask, "mask_problem"], strict=True)
        ),
        flagged={p: q for p, q in zip(images["path"], images["mask_quality"], strict=True) if q},
    )


def no_mask_reason(images: pd.DataFrame) -> str:
    """Why no image has a lung mask: how many mask files were found but refused, and why (the
    first reason; each image's is in ``images.csv``'s ``mask_problem``), or that none was."""
    refused = images.loc[images["mask_source"] == REFUSED, "mask_problem"]
    if refused.empty:
        return "no image has a lung mask (none given, none in V7, segmenter off)"
    others = len(images) - len(refused)
    rest = f"; {others} other image(s) have none" if others else ""
    return (
        f"no image has a lung mask: the masks of {len(refused)} of {len(images)} images were "
        f"given but refused (mask_problem in images.csv says why for each; the first: "
        f"{refused.iloc[0]}){rest}"
    )


def attribution_by_group(
    images: pd.DataFrame, method: str, threshold: float, settings: AuditSettings
) -> MethodAttribution:
    def summary(rows: pd.DataFrame) -> LungAttribution:
        return summarize_attribution(
            rows, method, settings.bootstrap_resamples, settings.confidence, settings.seed
        )

    called = images["prob_covid"] >= threshold
    correct = np.where(called == images["label"].astype(bool), "correct", "incorrect")
    return MethodAttribution(
        overall=summary(images),
        by_class={CLASS_NAMES[k]: summary(g) for k, g in images.groupby("label", sort=True)},
        by_correct={k: summary(g) for k, g in images.groupby(correct, sort=True)},
        by_source={str(k): summary(g) for k, g in images.groupby("source", sort=True)}
        if images["source"].notna().any()
        else {},
    )


def summarize_audit(
    images: pd.DataFrame,
    probes: dict[str, GroupProbe | str],
    methods: dict[str, str],
    thresholds: dict[str, float],
    model_threshold: float,
    settings: AuditSettings,
    split: str,
    backbone: str,
    checkpoint: str | None,
    titles: dict[str, str] | None = None,
) -> AuditResult:
    """The :class:`AuditResult` of the measurements (``images.csv``, with the confounder probes'
    calls) and each confounder's probe (:func:`~deepcovid.shortcuts.confounders.probe_confounders`,
    or why there is none); its ``flags`` come from
    :func:`~deepcovid.shortcuts.flags.with_findings`."""
    skipped: dict[str, str] = {}
    with_mask = images[images["lung_area_share"].notna()]
    attribution, ablation, retained = {}, None, None
    if with_mask.empty:
        skipped["lung_attribution"] = skipped["ablation"] = no_mask_reason(images)
    else:
        attribution = {
            name: attribution_by_group(with_mask, name, model_threshold, settings)
            for name in methods
        }
        ablation = summarize_ablation(
            with_mask, thresholds, settings.bootstrap_resamples, settings.confidence, settings.seed
        )
        if (ablation["intact"].auroc or 0.0) > 0.5:
            retained = retained_discrimination(
                with_mask, settings.bootstrap_resamples, settings.confidence, settings.seed
            )
    columns, left_out = confounder_columns(images, settings.confounders)
    skipped |= left_out
    confounders = {
        column: audit_confounder(
            images,
            column,
            probes[column],
            settings.bootstrap_resamples,
            settings.confidence,
            settings.seed,
        )  # fmt: skip
        for column in columns
    }
    return AuditResult(
        split=split, backbone=backbone, checkpoint=checkpoint, methods=methods,
        masks=mask_summary(images), lung_attribution=attribution, ablation=ablation,
        confounders=confounders, flags=[], skipped=skipped, confidence=settings.confidence,
        retained=retained, settings=settings, out_of_scope=out_of_scope(images),
        titles=dict(titles or {}),
    )  # fmt: skip


def out_of_scope(images: pd.DataFrame) -> dict[str, str]:
    """The audited images that are not frontal chest radiographs (``scope_reason``), by path."""
    if "scope_reason" not in images:
        return {}
    return {p: r for p, r in zip(images["path"], images["scope_reason"], strict=True) if r}
