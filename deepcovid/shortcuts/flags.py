"""The audit's findings in plain words: each a measured number against a stated threshold
(``AuditSettings``), never a verdict that the model is sound."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from deepcovid.results.collapse import GroupAuroc, collapse_sentences
from deepcovid.results.markdown import ci_label
from deepcovid.shortcuts.ablation import Retained, retained_share
from deepcovid.shortcuts.result import AuditResult, AuditSettings

if TYPE_CHECKING:
    from deepcovid.shortcuts.confounders import Confounder

TOLERANCE = 1e-9  # far below the 1 / (COVID × non-COVID) step of any AUROC


def pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def discriminates(result: AuditResult) -> bool:
    """Whether the intact model's AUROC interval lies above chance: only then do the lung
    measures say where its discrimination comes from."""
    if result.ablation is None:
        return False
    low = result.ablation["intact"].auroc_ci[0]
    return low is not None and low > 0.5


def attribution_findings(result: AuditResult, settings: AuditSettings) -> list[str]:
    found = []
    for method, attribution in result.lung_attribution.items():
        a, name = attribution.overall, result.title(method)
        if a.zero_maps:
            found.append(
                f"{a.zero_maps} of {a.n + a.zero_maps} {name} maps hold no positive attribution "
                "and are left out (nothing in them raised the score; occlusion of P(COVID) also "
                "saturates on confident images: score=logit explains its log-odds)"
            )
        if not discriminates(result):
            continue  # where a model that does not discriminate looks says nothing
        if a.mean_share is not None and a.share_over_area <= settings.share_over_area:
            found.append(
                f"its {name} maps put {pct(a.mean_share)} of their positive attribution inside "
                f"the lungs, which cover {pct(a.area_share)} of the image (ratio "
                f"{a.share_over_area:.2f}): no more than a uniform map would"
            )
        if a.pointing_hit_rate is not None and a.pointing_hit_rate <= a.area_share:
            found.append(
                f"its {name} maps peak inside the lungs in {pct(a.pointing_hit_rate)} of the "
                f"images, no more often than the lungs' {pct(a.area_share)} share of the image"
            )
    return found


def at_least(value: float, bound: float) -> bool:
    """``value ≥ bound`` up to float rounding: AUROCs are ratios of counts, so a share that is
    exactly the bound (0.90 / 0.70 keeps 50 %) may come out a hair below it."""
    return value >= bound - TOLERANCE


def retained_text(retained: Retained, confidence: float) -> str:
    """``retains 67 % (95 % CI 52–80 %) of its discrimination above chance``: the one wording."""
    low, high = retained.share_ci
    span = "" if low is None else f" ({ci_label(confidence)} {pct(low)}–{pct(high)})"
    return f"retains {pct(retained.share)}{span} of its discrimination above chance"


def retained_decision(retained: Retained, settings: AuditSettings) -> tuple[bool, str]:
    """Whether the lungs-removed flag is raised, and the rule it was decided on: the lower end
    of the retained share's interval, or the share itself where there is no interval."""
    bound = pct(settings.retained_discrimination)
    low = retained.share_ci[0]
    if low is None:
        why = "; ".join(retained.undefined.values())
        return at_least(retained.share, settings.retained_discrimination), (
            f"decided on the share itself, at least {bound} (no interval: {why})"
        )
    return at_least(low, settings.retained_discrimination), (
        f"decided on the interval: flagged when its lower end is at least {bound}"
    )


def ablation_findings(result: AuditResult, settings: AuditSettings) -> list[str]:
    if result.ablation is None:
        return []
    intact, removed = result.ablation["intact"].auroc, result.ablation["lungs_removed"].auroc
    only = result.ablation["lungs_only"].auroc
    if not discriminates(result) or result.retained is None:
        low, high = result.ablation["intact"].auroc_ci
        span = "" if low is None else f" ({ci_label(result.confidence)} {low:.3f}–{high:.3f})"
        return [
            f"the model does not separate the classes here: intact AUROC {intact:.3f}{span} "
            "includes chance, so the ablation and the heatmaps cannot say what it reads"
            if intact is not None
            else "the intact AUROC is undefined, so the ablation says nothing"
        ]
    found = []
    flagged, rule = retained_decision(result.retained, settings)
    if flagged:
        found.append(
            f"with the lungs removed it {retained_text(result.retained, result.confidence)} "
            f"(AUROC {removed:.3f} against {intact:.3f} intact; {rule}): it reads something "
            "outside the lungs"
        )
    if only is not None and not at_least(
        float(retained_share(intact, only)), settings.retained_discrimination
    ):
        found.append(
            f"with the lungs only it falls to an AUROC of {only:.3f} (from {intact:.3f}): the "
            "lungs alone do not carry its decision"
        )
    return found


def probe_findings(confounder: Confounder, settings: AuditSettings) -> list[str]:
    """The features encode the grouping beyond the label, or within a class."""
    probe, column, found = confounder.probe, confounder.column, []
    if probe is None:
        return []
    if at_least(probe.accuracy - probe.baseline, settings.probe_margin):
        found.append(
            f"its penultimate features tell the {probe.n_values} {column} values apart beyond "
            f"what the label says: a linear probe is right for {pct(probe.accuracy)} of the "
            f"images, against {pct(probe.label_only_accuracy)} for the label alone and "
            f"{pct(probe.majority_rate)} for always naming the most common {column}"
        )
    for name, within in probe.within_class.items():
        if at_least(within.accuracy - within.majority_rate, settings.probe_margin):
            found.append(
                f"within the {within.n} {name} images alone its features tell the "
                f"{within.n_values} {column} values apart: a linear probe is right for "
                f"{pct(within.accuracy)}, against {pct(within.majority_rate)} for always naming "
                f"their most common {column}"
            )
    return found


def within_text(confounder: Confounder) -> str:
    """``within PA images alone the AUROC is 0.550 and within AP 0.580``."""
    parts = [(s.value, s.auroc) for s in confounder.strata if s.auroc is not None]
    (first, value), rest = parts[0], parts[1:]
    text = f"within {first} images alone the AUROC is {value:.3f}"
    if rest:
        listed = [f"within {v} {a:.3f}" for v, a in rest]
        text += ", ".join(["", *listed[:-1]]) + f" and {listed[-1]}"
    return text


def balanced_findings(confounder: Confounder, confidence: float) -> list[str]:
    """The stratum-balanced AUROC's interval lies below the AUROC of all images: the
    discrimination comes from the mix of the grouping's values."""
    c, (low, high) = confounder, confounder.balanced_auroc_ci
    if c.balanced_auroc is None or c.auroc is None or high is None or high >= c.auroc:
        return []
    association = (
        "" if c.cramers_v is None else f" (Cramér's V of {c.column} and label {c.cramers_v:.2f})"
    )
    return [
        f"{within_text(c)}, against {c.auroc:.3f} over all images with a {c.column}; balanced "
        f"over {c.column} (COVID–non-COVID pairs within one value only) it is "
        f"{c.balanced_auroc:.3f} ({ci_label(confidence)} {low:.3f}–{high:.3f}): its "
        f"discrimination comes largely from the {c.column} mix{association}"
    ]


def confounder_findings(result: AuditResult, settings: AuditSettings) -> list[str]:
    """Per confounder: the features read it, the AUROC falls within its values, and values
    holding one class only."""
    found = []
    for column, c in result.confounders.items():
        found += probe_findings(c, settings)
        found += balanced_findings(c, result.confidence)
        groups = [GroupAuroc(s.value, s.n, s.n_positive, s.auroc, s.auroc_ci) for s in c.strata]
        found += collapse_sentences(column, groups, c.auroc, result.confidence)
        if c.single_class:
            listed = ", ".join(f"{v} ({k} only)" for v, k in c.single_class.items())
            found.append(
                f"label and {column} are confounded: {len(c.single_class)} {column} value(s) "
                f"hold one class only ({listed}), {pct(c.single_class_share)} of the images"
            )
    return found


def scope_findings(result: AuditResult) -> list[str]:
    """The audited images that are not frontal chest radiographs, named (at most 5)."""
    if not result.out_of_scope:
        return []
    named = "; ".join(f"{Path(p).name}: {why}" for p, why in list(result.out_of_scope.items())[:5])
    more = f" and {len(result.out_of_scope) - 5} more" if len(result.out_of_scope) > 5 else ""
    return [
        f"{len(result.out_of_scope)} audited image(s) are not frontal chest radiographs "
        f"({named}{more}; in_scope and scope_reason in images.csv): they were kept "
        "(data.out_of_scope=keep), so every number here includes them"
    ]


def findings(result: AuditResult, settings: AuditSettings) -> list[str]:
    """Every finding whose measurement crossed its threshold."""
    return [
        *scope_findings(result),
        *ablation_findings(result, settings),
        *attribution_findings(result, settings),
        *confounder_findings(result, settings),
    ]


def with_findings(result: AuditResult) -> AuditResult:
    """``result`` with its :func:`findings` (against its own settings) as ``flags``."""
    return dataclasses.replace(result, flags=findings(result, result.settings))
