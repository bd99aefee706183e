"""``audit/report.md``: "Does the model look at the lungs?" in plain sentences with the numbers."""

from __future__ import annotations

from deepcovid.results.markdown import ci_label, number, table, with_ci
from deepcovid.shortcuts.attribution import LungAttribution
from deepcovid.shortcuts.confounders import BALANCED_ESTIMATOR, Confounder, StratumAuroc
from deepcovid.shortcuts.flags import pct, retained_decision, retained_text
from deepcovid.shortcuts.probe import call_columns
from deepcovid.shortcuts.result import AuditResult

FIGURES = {"lung_share": "Lung share of positive attribution by class",
           "overlays": "Heatmaps with the lung contour"}  # fmt: skip


def interval(ci: tuple) -> str:
    low, high = ci
    return "" if low is None or high is None else f" ({pct(low)}–{pct(high)})"


def attribution_row(group: str, a: LungAttribution) -> list[str]:
    if a.mean_share is None:
        return [group, str(a.n), "n/a", "n/a", "n/a", "n/a", str(a.zero_maps)]
    return [
        group,
        str(a.n),
        pct(a.mean_share) + interval(a.share_ci),
        pct(a.area_share),
        f"{a.share_over_area:.2f}",
        pct(a.pointing_hit_rate) + interval(a.pointing_ci),
        str(a.zero_maps),
    ]


def sanity_section(result: AuditResult, figures_dir: str) -> list[str]:
    """The heatmap sanity checks: the randomisation cascade and the deletion curves."""
    if not result.sanity:
        return []
    settings = result.settings.sanity
    lines = [
        "## Heatmap sanity checks",
        "",
        "Model-parameter randomisation (Adebayo et al. 2018): the head re-initialised, then the "
        "top shares of the weighted layers, cascading; each method's maps of the same images "
        "recomputed and compared with the original maps (mean Spearman rank correlation and "
        "SSIM over images). A method is flagged when its maps stay close (rank correlation "
        f"≥ {settings.max_spearman:g}) after the last step. Deletion: mean P(COVID) as the "
        "top-attributed pixels are set to the baseline, against random pixels; a positive "
        "area between the curves means the map finds pixels the model uses.",
        "",
    ]
    for method, check in result.sanity.items():
        rows = [
            [s.step, f"{s.layers} (down to {s.down_to})", f"{s.spearman:.3f}", f"{s.ssim:.3f}",
             str(s.n_flat)]
            for s in check.randomisation.steps
        ]  # fmt: skip
        deletion = check.deletion
        curve = ", ".join(
            f"{f:.0%}: {a:.3f} / {r:.3f}"
            for f, a, r in zip(deletion.fractions, deletion.attributed, deletion.random,
                               strict=True)
        )  # fmt: skip
        verdict = "flagged" if check.randomisation.flagged else "passes"
        lines += [
            f"### {result.title(method)}: randomisation {verdict}",
            "",
            f"{check.randomisation.n_images} images.",
            "",
            table(["Re-initialised", "Layers", "Spearman", "SSIM", "Flat maps"], rows),
            "",
            f"Deletion, P(COVID) top-attributed / random by share removed: {curve}; area "
            f"between the curves {deletion.area_between:+.3f}.",
            "",
        ]
    return [*lines, f"![Heatmap sanity checks]({figures_dir}/sanity.png)", ""]


def attribution_section(result: AuditResult) -> list[str]:
    if not result.lung_attribution:
        return [f"Heatmaps were not scored: {result.skipped.get('lung_attribution')}.", ""]
    header = ["Images", "n", "Attribution in the lungs", "Lungs' area", "Ratio",
              "Peak in the lungs", "Maps without positive attribution"]  # fmt: skip
    lines = []
    for method, attribution in result.lung_attribution.items():
        rows = [attribution_row("all", attribution.overall)]
        for groups in (attribution.by_class, attribution.by_correct, attribution.by_source):
            rows += [attribution_row(name, a) for name, a in groups.items()]
        lines += [f"### {result.title(method)} ({result.methods[method]})", "",
                  table(header, rows), ""]  # fmt: skip
    return lines


def ablation_section(result: AuditResult) -> list[str]:
    if result.ablation is None:
        return [f"No lung ablation: {result.skipped.get('ablation')}.", ""]
    names = [p.name for p in result.ablation["intact"].points]
    auroc = f"AUROC ({ci_label(result.confidence)})"
    header = ["Images", auroc, *[f"sens / spec at {n}" for n in names]]
    rows = []
    for variant, ablated in result.ablation.items():
        low, high = ablated.auroc_ci
        ci = "" if low is None else f" ({low:.3f}–{high:.3f})"
        points = [
            f"{number(p.sensitivity, 2)} / {number(p.specificity, 2)}" for p in ablated.points
        ]
        rows.append([variant.replace("_", " "), f"{number(ablated.auroc)}{ci}", *points])
    return [table(header, rows), "", *retained_lines(result)]


def retained_lines(result: AuditResult) -> list[str]:
    """The paired comparison of intact and lungs removed, and how the flag was decided."""
    retained = result.retained
    if retained is None:
        return []
    ci = ci_label(result.confidence) + " "
    difference = with_ci(retained.difference, retained.difference_ci, label=ci)
    flagged, rule = retained_decision(retained, result.settings)
    return [
        f"Intact − lungs removed AUROC: {difference} (paired bootstrap, {retained.n_valid} of "
        f"{retained.n_resamples} resamples of {retained.unit}s). With the lungs removed the "
        f"model {retained_text(retained, result.confidence)}; the flag is "
        f"{'raised' if flagged else 'not raised'}, {rule}.",
        "",
    ]


def stratum_auroc_text(s: StratumAuroc) -> str:
    if s.auroc is None:
        return str(s.reason)
    why = "" if s.reason is None else f" ({s.reason})"
    return with_ci(s.auroc, s.auroc_ci) + why


def probe_lines(c: Confounder, skipped: str | None) -> list[str]:
    probe = c.probe
    if probe is None:
        return [f"No {c.column} probe: {skipped}."]
    return [
        f"A logistic-regression probe of the penultimate features, cross-validated over "
        f"{probe.folds_text}, names the {c.column} of {pct(probe.accuracy)} "
        f"of {probe.n} images ({probe.n_values} values; AUROC {number(probe.auroc)}). The "
        f"label alone (each class's most common {c.column}, the same folds) names it for "
        f"{pct(probe.label_only_accuracy)}, always naming the most common {c.column} for "
        f"{pct(probe.majority_rate)}: only what the features add beyond the better of the two "
        f"is flagged (each image's calls: {', '.join(call_columns(c.column).values())} in "
        "images.csv).",
        *[
            f"- Within the {within.n} {name} images ({within.n_values} values): the probe is "
            f"right for {pct(within.accuracy)}, the most common {c.column} for "
            f"{pct(within.majority_rate)}."
            for name, within in probe.within_class.items()
        ],
        *[
            f"- Within the {name} images: no probe ({why})."
            for name, why in probe.within_class_undefined.items()
        ],
    ]


def confounder_section(c: Confounder, confidence: float) -> list[str]:
    """One confounder: counts and AUROC per value, association, balanced AUROC, the probe."""
    auroc = f"AUROC within the value ({ci_label(confidence)})"
    rows = [[s.value, s.n, s.n_positive, s.n - s.n_positive, stratum_auroc_text(s)]
            for s in c.strata]  # fmt: skip
    v = c.undefined.get("cramers_v") if c.cramers_v is None else f"{c.cramers_v:.3f}"
    balanced = (
        with_ci(c.balanced_auroc, c.balanced_auroc_ci, label=ci_label(confidence) + " ")
        if c.balanced_auroc is not None
        else f"n/a ({c.undefined.get('balanced_auroc')})"
    )
    lines = [
        f"### {c.column}",
        "",
        table([c.column, "Images", "COVID", "non-COVID", auroc], rows),
        "",
        f"{c.n} images have a {c.column}. Cramér's V of {c.column} and label: {v}. AUROC of "
        f"all of them: {number(c.auroc)}; balanced over {c.column} ({BALANCED_ESTIMATOR}): "
        f"{balanced}.",
        "",
        *probe_lines(c, c.undefined.get("probe")),
    ]
    if c.single_class:
        lines += ["", f"**Label and {c.column} are confounded**: {pct(c.single_class_share)} "
                  f"of the images have a {c.column} value holding one class only."]  # fmt: skip
    return [*lines, ""]


def confounders_section(result: AuditResult) -> list[str]:
    if not result.confounders:
        return ["No grouping of the images to audit (audit.confounders).", ""]
    lines = [
        "For each grouping: how it goes with the label (counts, Cramér's V), the AUROC within "
        "each value that holds both classes (patient bootstrap intervals), the AUROC balanced "
        "over its values, and whether the penultimate features encode it beyond the label.",
        "",
    ]
    for c in result.confounders.values():
        lines += confounder_section(c, result.confidence)
    return lines


def audit_report(result: AuditResult, figures_dir: str = "figures") -> str:
    """The audit as Markdown."""
    masks = result.masks
    origins = ", ".join(f"{n} {origin}" for origin, n in masks.by_origin.items()) or "none"
    flags = [f"- {flag}." for flag in result.flags] or [
        "- No finding crossed its threshold. That is not proof that the model reads the lungs: "
        "read the numbers below."
    ]
    lines = [
        f"# Does the model look at the lungs? {result.backbone} on the {result.split} split",
        "",
        f"{masks.n_images} images; {masks.n_with_mask} have a lung mask ({origins}); "
        f"{len(masks.missing)} have none and are left out of the lung measures; "
        f"{len(masks.flagged)} mask(s) carry a quality flag (listed in images.csv).",
        "",
        "## Findings",
        "",
        *flags,
        "",
        "## Lung ablation",
        "",
        "Each image scored intact, with its lungs set to the occlusion baseline, and with "
        "everything but the lungs set to it.",
        "",
        *ablation_section(result),
        "## Heatmaps against the lungs",
        "",
        "The share of each map's positive attribution that lies inside the lungs, against the "
        "share of the image the lungs cover (ratio 1: no better than a uniform map), and how "
        "often the map's peak lies inside them (pointing game). Intervals: "
        f"{100 * result.confidence:g} %, bootstrap over patients where known.",
        "",
        *attribution_section(result),
        "## Confounders",
        "",
        *confounders_section(result),
        *sanity_section(result, figures_dir),
        "## Figures",
        "",
        *[f"![{title}]({figures_dir}/{name}.png)" for name, title in FIGURES.items()],
        "",
    ]
    if result.skipped:
        lines += ["## Not measured", "", *[f"- {k}: {v}" for k, v in result.skipped.items()], ""]
    return "\n".join(lines).rstrip() + "\n"
