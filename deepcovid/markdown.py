"""Evaluation results as Markdown: the per-run results section (report.md) and its pieces."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepcovid.utils.files import printable

INTERVAL_NAMES = {
    "wilson": "Wilson score",
    "clopper_pearson": "Clopper-Pearson exact",
    "normal": "normal-approximation (Wald)",
}
RULE_TEXT = {
    "target_sensitivity": "val sensitivity ≥ {target:g} %",
    "youden": "max. Youden's J on val",
    "target_specificity": "val specificity ≥ {target:g} %",
}
PLOTS = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "confusion_matrix": "Confusion matrix",
    "score_histogram": "Score histogram",
    "reliability": "Reliability diagram",
}


def number(value: float | None, digits: int = 3) -> str:
    """``0.953``, or ``n/a`` for an undefined (None) value."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """``97.5 %``, or ``n/a``."""
    return "n/a" if value is None else f"{100 * value:.1f} %"


def with_ci(
    value: float | None, ci: Sequence[float | None], as_percent: bool = False, label: str = ""
) -> str:
    """``0.953 (0.912–0.985)`` or ``97.5 % (87.1–99.6 %)``, the interval prefixed by ``label``
    (e.g. ``95 % CI ``) and left out when undefined; ``n/a`` for an undefined value."""
    if value is None:
        return "n/a"
    low, high = ci
    if low is None or high is None:
        return percent(value) if as_percent else number(value)
    if as_percent:
        return f"{percent(value)} ({label}{100 * low:.1f}–{100 * high:.1f} %)"
    return f"{number(value)} ({label}{number(low)}–{number(high)})"


def ci_label(metrics: dict) -> str:
    """``95 % CI`` at the confidence of ``metrics``."""
    return f"{100 * metrics['confidence']:g} % CI"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown pipe table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def rule_name(point: dict) -> str:
    """How a threshold was obtained, in words."""
    if point["name"] == "fixed":
        return f"fixed {point['threshold']:g}"
    return RULE_TEXT[point["name"]].format(target=100 * (point.get("target") or 0.0))


def threshold_text(threshold: float | None) -> str:
    """A threshold to four significant digits, ``n/a`` when there is none."""
    return "n/a" if threshold is None else f"{threshold:.4g}"


def fraction(hits: int | None, misses: int | None) -> str:
    """``39/40``."""
    return "–" if hits is None or hits + misses == 0 else f"{hits}/{hits + misses}"


def point_row(point: dict) -> list[str]:
    """Threshold, sensitivity and specificity with intervals and counts."""
    return [
        threshold_text(point["threshold"]),
        with_ci(point["sensitivity"], point["sensitivity_ci"], as_percent=True),
        fraction(point["tp"], point["fn"]),
        with_ci(point["specificity"], point["specificity_ci"], as_percent=True),
        fraction(point["tn"], point["fp"]),
    ]


def point_header(metrics: dict) -> list[str]:
    """Column names of :func:`point_row`."""
    ci = ci_label(metrics)
    return ["Threshold", f"Sensitivity ({ci})", "TP/COVID", f"Specificity ({ci})", "TN/non-COVID"]


def rate_text(point: dict, metric: str, hits: str, misses: str, ci: str) -> str:
    """``97.5 % (39/40; 95 % CI 87.1–99.6 %)``."""
    value, (low, high) = point[metric], point[f"{metric}_ci"]
    if value is None:
        return "n/a"
    counts = fraction(point[hits], point[misses])
    if low is None or high is None:
        return f"{percent(value)} ({counts})"
    return f"{percent(value)} ({counts}; {ci} {100 * low:.1f}–{100 * high:.1f} %)"


def sentence_for(point: dict, on_val: dict | None, split: str, ci: str) -> str:
    """One sentence on a val-chosen operating point (``on_val``: the same threshold on val)
    applied to ``split``."""
    rule = rule_name(point)
    if point["threshold"] is None:
        return f"- {rule}: no threshold ({point['undefined'].get('threshold', 'unknown')})."
    reached = ""
    if on_val is not None:
        reached = (
            f" (on val: sensitivity {percent(on_val['sensitivity'])}, "
            f"specificity {percent(on_val['specificity'])})"
        )
    return (
        f"- {rule}, P(COVID) ≥ {threshold_text(point['threshold'])}{reached}: {split} "
        f"sensitivity {rate_text(point, 'sensitivity', 'tp', 'fn', ci)}, specificity "
        f"{rate_text(point, 'specificity', 'tn', 'fp', ci)}."
    )


def data_sentence(metrics: dict) -> str:
    """Who was evaluated, and how the intervals were made."""
    model = metrics.get("model") or {}
    patients = f", {metrics['n_patients']} patients" if metrics.get("n_patients") else ""
    boot = metrics["bootstrap"]
    confidence = f"{100 * metrics['confidence']:g} %"
    return (
        f"The {model.get('backbone', 'classifier')} classifier"
        + (f" (checkpoint `{model['checkpoint']}`)" if model.get("checkpoint") else "")
        + f" was evaluated on the {metrics['split']} split: {metrics['n']} images, "
        f"{metrics['n_positive']} COVID and {metrics['n_negative']} non-COVID{patients}. "
        "An image is called COVID when P(COVID) ≥ the threshold. Intervals are "
        f"{confidence} {INTERVAL_NAMES[metrics['interval']]} intervals for sensitivity and "
        f"specificity, and {confidence} percentile bootstrap intervals for AUROC and average "
        f"precision ({boot['n_resamples']} resamples of {boot['unit']}s, seed {boot['seed']})."
    )


def discrimination_sentence(metrics: dict) -> str:
    """AUROC and average precision with their bootstrap intervals."""
    ci = ci_label(metrics) + " "
    auroc = with_ci(metrics["auroc"], metrics["auroc_ci"], label=ci)
    ap = with_ci(metrics["average_precision"], metrics["average_precision_ci"], label=ci)
    return f"The AUROC was {auroc} and the average precision {ap}."


def chosen_section(metrics: dict) -> list[str]:
    """Operating points chosen on val and applied to the evaluated split."""
    chosen = [p for p in metrics["operating_points"] if p["chosen_on"]]
    val = metrics.get("validation")
    lines = ["## Operating points chosen on the validation split", ""]
    if val:
        lines.append(
            f"Thresholds were chosen on the validation split ({val['n']} images: "
            f"{val['n_positive']} COVID, {val['n_negative']} non-COVID) and applied unchanged "
            f"to the {metrics['split']} split."
        )
    if metrics["split"] == "val":
        lines.append(
            "**These thresholds were chosen and evaluated on the same images: the operating "
            "points are optimistic.**"
        )
    ci = ci_label(metrics)
    on_val = {p["name"]: p for p in (val or {}).get("operating_points", [])}
    sentences = [sentence_for(p, on_val.get(p["name"]), metrics["split"], ci) for p in chosen]
    lines += ["", *sentences, ""]
    rows = [[rule_name(p), *point_row(p)] for p in chosen]
    lines += [table(["Rule", *point_header(metrics)], rows), ""]
    return lines


def subgroup_section(metrics: dict) -> list[str]:
    """Per-source and per-finding tables at the model's threshold."""
    if not metrics["subgroups"]:
        return []
    threshold = metrics["threshold"]
    lines = [
        "## Subgroups",
        "",
        f"At the model's threshold {threshold:g}. AUROC needs both classes in a subgroup; "
        "subgroups have no AUROC interval.",
        "",
    ]
    header = ["Value", "Images", "COVID", "non-COVID", "AUROC", "AP", *point_header(metrics)[1:]]
    for column, groups in metrics["subgroups"].items():
        rows = [
            [
                g["value"],
                g["n"],
                g["n_positive"],
                g["n_negative"],
                number(g["auroc"]),
                number(g["average_precision"]),
                *point_row(g["operating_point"])[1:],
            ]
            for g in groups
        ]
        lines += [f"### By {column}", "", table(header, rows), ""]
    return lines


def undefined_section(metrics: dict) -> list[str]:
    """Every quantity reported as n/a, with the reason."""
    notes = [f"- {key}: {reason}" for key, reason in metrics["undefined"].items()]
    for point in metrics["operating_points"]:
        if point["undefined"] and point["threshold"] is not None:
            label = rule_name(point)
            notes += [f"- {key} at {label}: {why}" for key, why in point["undefined"].items()]
    if not notes:
        return []
    return ["## Undefined quantities", "", *dict.fromkeys(notes), ""]


def skipped_section(metrics: dict) -> list[str]:
    """A paragraph naming the files left out under ``data.on_bad_file=skip``, if any."""
    skipped = metrics.get("skipped") or []
    if not skipped:
        return []
    names = "; ".join(f"`{printable(s['path'])}`" for s in skipped[:20])
    more = f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
    return [
        f"{len(skipped)} unreadable file(s) were left out (data.on_bad_file=skip): {names}{more}.",
        "",
    ]


def results_section(metrics: dict, plots_dir: str = "plots") -> str:
    """report.md: a results section in the paper's style, from a ``metrics/<split>.json`` dict."""
    model = metrics.get("model") or {}
    fixed = [p for p in metrics["operating_points"] if not p["chosen_on"]]
    lines = [
        f"# Results: {model.get('backbone', 'classifier')} on the {metrics['split']} split",
        "",
        data_sentence(metrics),
        "",
        *skipped_section(metrics),
        "## Discrimination",
        "",
        discrimination_sentence(metrics),
        "",
        *chosen_section(metrics),
        "## Sensitivity and specificity at fixed thresholds",
        "",
        table(point_header(metrics), [point_row(p) for p in fixed]),
        "",
        "## Calibration",
        "",
        f"The expected calibration error over {metrics['calibration']['n_bins']} equal-width "
        f"bins of P(COVID) was {number(metrics['ece'])}.",
        "",
        *subgroup_section(metrics),
        "## Figures",
        "",
        *[f"![{title}]({plots_dir}/{name}.png)" for name, title in PLOTS.items()],
        "",
        *undefined_section(metrics),
    ]
    return "\n".join(lines).rstrip() + "\n"
