"""Evaluation results as Markdown: report.md of one evaluation, and the pieces other reports
(comparison, audit) build their tables from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deepcovid.results.collapse import GroupAuroc, collapse_sentences
from deepcovid.results.names import INTERVAL_NAMES, rule_name
from deepcovid.utils.files import printable

if TYPE_CHECKING:  # light at run time: benchmarks use the table helpers on bare machines
    from deepcovid.metrics.intervals import Estimate
    from deepcovid.metrics.operating_points import Interval, OperatingPoint
    from deepcovid.metrics.summary import Calibration, Evaluation

PLOTS = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "confusion_matrix": "Confusion matrix",
    "score_histogram": "Score histogram",
    "reliability": "Reliability diagram",
    "decision_curve": "Decision curve",
}


def number(value: float | None, digits: int = 3) -> str:
    """``0.953``, or ``n/a`` for an undefined (None) value."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def percent(value: float | None) -> str:
    """``97.5 %``, or ``n/a``."""
    return "n/a" if value is None else f"{100 * value:.1f} %"


def with_ci(value: float | None, ci: Interval, as_percent: bool = False, label: str = "") -> str:
    """``0.953 (0.912–0.985)`` or ``97.5 % (87.1–99.6 %)``, the interval prefixed by ``label``
    (e.g. ``95 % CI ``) and left out when undefined; ``n/a`` for an undefined value."""
    if value is None:
        return "n/a"
    low, high = ci
    if low is None or high is None:
        return percent(value) if as_percent else number(value)
    if as_percent:
        return f"{percent(value)} ({label}{100 * low:.1f}–{100 * high:.1f} %)"
    if low < 0:  # a difference: "−0.142 to 0.083", never "-0.142–0.083"
        return f"{signed(value)} ({label}{signed(low)} to {signed(high)})"
    return f"{number(value)} ({label}{number(low)}–{number(high)})"


def signed(value: float) -> str:
    """``−0.030`` (a true minus sign) or ``0.083``."""
    return f"{value:.3f}".replace("-", "−")


def estimate_text(estimate: Estimate | None, digits: int = 3) -> str:
    """``0.953 (0.912–0.985)``, ``0.953 (no interval)`` when its bounds are not finite (a
    Wald interval without a standard error: null once written to JSON), or ``n/a``."""
    if estimate is None or estimate.value is None:
        return "n/a"
    bounds = (estimate.low, estimate.high)
    if any(bound is None or not math.isfinite(bound) for bound in bounds):
        return f"{estimate.value:.{digits}f} (no interval)"
    return f"{estimate.value:.{digits}f} ({estimate.low:.{digits}f}–{estimate.high:.{digits}f})"


def ci_label(confidence: float) -> str:
    """``95 % CI`` at ``confidence``."""
    return f"{100 * confidence:g} % CI"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown pipe table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def threshold_text(threshold: float | None) -> str:
    """A threshold to four significant digits, ``n/a`` when there is none."""
    return "n/a" if threshold is None else f"{threshold:.4g}"


def fraction(hits: int, misses: int) -> str:
    """``39/40``, or ``–`` for a fraction of nothing."""
    return "–" if hits + misses == 0 else f"{hits}/{hits + misses}"


def point_row(point: OperatingPoint) -> list[str]:
    """Threshold, sensitivity and specificity with intervals and counts."""
    counts = point.counts
    return [
        threshold_text(point.threshold),
        with_ci(point.sensitivity, point.sensitivity_ci, as_percent=True),
        "–" if counts is None else fraction(counts.tp, counts.fn),
        with_ci(point.specificity, point.specificity_ci, as_percent=True),
        "–" if counts is None else fraction(counts.tn, counts.fp),
    ]


def point_header(confidence: float) -> list[str]:
    """Column names of :func:`point_row`."""
    ci = ci_label(confidence)
    return ["Threshold", f"Sensitivity ({ci})", "TP/COVID", f"Specificity ({ci})", "TN/non-COVID"]


def rate_text(value: float | None, ci: Interval, counts: str, label: str) -> str:
    """``97.5 % (39/40; 95 % CI 87.1–99.6 %)``."""
    if value is None:
        return "n/a"
    low, high = ci
    if low is None or high is None:
        return f"{percent(value)} ({counts})"
    return f"{percent(value)} ({counts}; {label} {100 * low:.1f}–{100 * high:.1f} %)"


def sentence_for(point: OperatingPoint, on_val: OperatingPoint | None, split: str, ci: str) -> str:
    """One sentence on a val-chosen operating point (``on_val``: the same threshold on val)
    applied to ``split``."""
    rule = rule_name(point)
    if point.threshold is None:
        return f"- {rule}: no threshold ({point.undefined.get('threshold', 'unknown')})."
    reached = ""
    if on_val is not None:
        reached = (
            f" (on val: sensitivity {percent(on_val.sensitivity)}, "
            f"specificity {percent(on_val.specificity)})"
        )
    c = point.counts
    sensitivity = rate_text(point.sensitivity, point.sensitivity_ci, fraction(c.tp, c.fn), ci)
    specificity = rate_text(point.specificity, point.specificity_ci, fraction(c.tn, c.fp), ci)
    return (
        f"- {rule}, P(COVID) ≥ {threshold_text(point.threshold)}{reached}: {split} "
        f"sensitivity {sensitivity}, specificity {specificity}."
    )


def data_sentence(evaluation: Evaluation) -> str:
    """Who was evaluated, and how the intervals were made."""
    model, counts, boot = evaluation.model, evaluation.counts, evaluation.bootstrap
    patients = f", {counts.n_patients} patients" if counts.n_patients else ""
    if counts.n_patients and counts.n_without_id:
        patients = (
            f", {counts.n_patients} identified patients, {counts.n_without_id} images without "
            "a patient id (each counted as its own patient)"
        )
    confidence = f"{100 * evaluation.confidence:g} %"
    checkpoint = f" (checkpoint `{model.checkpoint}`)" if model.checkpoint else ""
    combined = f" {model.ensemble}." if model.ensemble else ""
    start = (
        f", its starting weights pretrained on {', '.join(model.pretrained_on)},"
        if model.pretrained_on
        else ", trained from randomly initialised weights,"
    )
    return (
        f"The {model.backbone} classifier{checkpoint}{start} was evaluated on the "
        f"{evaluation.split} split of {evaluation.mode}: {counts.n} images, "
        f"{counts.n_positive} COVID and {counts.n_negative} non-COVID{patients}, its network "
        f"run in {evaluation.precision} precision.{combined} An image is called COVID when "
        "P(COVID) ≥ the threshold. Intervals are "
        f"{confidence} {INTERVAL_NAMES[evaluation.interval_used]} intervals for sensitivity "
        f"and specificity, and {confidence} percentile bootstrap intervals for AUROC and "
        f"average precision ({boot.n_resamples} resamples of {boot.unit}s, seed {boot.seed})."
    )


def discrimination_sentence(evaluation: Evaluation) -> str:
    """AUROC and average precision with their bootstrap intervals."""
    ci = ci_label(evaluation.confidence) + " "
    auroc = with_ci(evaluation.auroc, evaluation.auroc_ci, label=ci)
    ap = with_ci(evaluation.average_precision, evaluation.average_precision_ci, label=ci)
    return f"The AUROC was {auroc} and the average precision {ap}."


def chosen_section(evaluation: Evaluation) -> list[str]:
    """Operating points chosen on val and applied to the evaluated split."""
    val = evaluation.validation
    lines = ["## Operating points chosen on a validation split", ""]
    if val is not None:
        lines.append(
            f"Thresholds were chosen on {val.source} ({val.counts.n} images: "
            f"{val.counts.n_positive} COVID, {val.counts.n_negative} non-COVID) and applied "
            f"unchanged to the {evaluation.split} split."
        )
    if evaluation.split == "val":
        lines.append(
            "**These thresholds were chosen and evaluated on the same images: the operating "
            "points are optimistic.**"
        )
    ci = ci_label(evaluation.confidence)
    on_val = {p.name: p for p in (val.points if val else [])}
    chosen = evaluation.chosen_points
    lines += ["", *[sentence_for(p, on_val.get(p.name), evaluation.split, ci) for p in chosen], ""]
    rows = [[rule_name(p), *point_row(p)] for p in chosen]
    lines += [table(["Rule", *point_header(evaluation.confidence)], rows), ""]
    return lines


def curve_prevalence_text(evaluation: Evaluation, prevalence: float) -> str:
    """Which prevalence the decision curve is drawn at (the split's own counts)."""
    counts = evaluation.counts
    own = counts.n_positive / counts.n if counts.n else None
    text = "The decision curve (figure below) weighs true against false positives at every "
    if own is None or abs(own - prevalence) < 1e-12:
        return text + "threshold, at this split's prevalence."
    return text + (
        f"threshold at this split's own prevalence of {percent(own)} (its counts), not at the "
        f"{percent(prevalence)} of metrics.prevalence used above."
    )


def decision_section(evaluation: Evaluation) -> list[str]:
    """PPV, NPV and likelihood ratios at the val-chosen operating points and the model's own
    threshold."""
    points = [p for p in evaluation.chosen_points if p.threshold is not None]
    points.append(evaluation.point_at(evaluation.threshold))
    prevalence = points[-1].prevalence
    if prevalence is None:
        return []
    ci = ci_label(evaluation.confidence)
    rows = [
        [rule_name(p), threshold_text(p.threshold), estimate_text(p.ppv), estimate_text(p.npv),
         estimate_text(p.lr_positive, 2), estimate_text(p.lr_negative, 2)]
        for p in points
    ]  # fmt: skip
    return [
        "## What a call means",
        "",
        f"At a COVID prevalence of {percent(prevalence)}: the share of COVID among images "
        "called COVID (PPV), of non-COVID among those called non-COVID (NPV), and the "
        f"likelihood ratios, with {ci} (PPV/NPV: logit intervals of Mercaldo et al. 2007; "
        "LR: log method of Simel et al. 1991; on the patient-adjusted counts where patient ids "
        f"exist). {curve_prevalence_text(evaluation, prevalence)}",
        "",
        table(["Rule", "Threshold", "PPV", "NPV", "LR+", "LR−"], rows),
        "",
    ]


def fitted_on_text(calibration: Calibration) -> str:
    """What the logistic fits took as logit(p), and how many scores were saturated."""
    from deepcovid.metrics.calibration import PROB_EPSILON

    if calibration.fitted_on == "log-odds":
        return "The fits use the model's log-odds, stored with the predictions."
    saturated = calibration.saturated
    counted = "" if saturated is None else (
        f" {saturated} of {calibration.bins.count.sum()} scores are saturated (P(COVID) "
        f"within {PROB_EPSILON:g} of 0 or 1) and were clipped there; the slope and "
        "intercept depend on that clip. Evaluate again to store the log-odds."
    )  # fmt: skip
    return (
        "These predictions hold probabilities only (no logit_covid column): the fits use "
        f"logit(P(COVID)) clipped to [{PROB_EPSILON:g}, 1 − {PROB_EPSILON:g}].{counted}"
    )


def calibration_section(evaluation: Evaluation) -> list[str]:
    """ECE, Brier, calibration intercept and slope, raw and recalibrated on val."""
    c = evaluation.calibration
    rows = [["raw scores", number(c.ece), estimate_text(c.brier), estimate_text(c.intercept),
             estimate_text(c.slope)]]  # fmt: skip
    for r in c.recalibrated:
        rows.append(
            [f"{r.method} scaling fitted on val", number(r.ece), estimate_text(r.brier),
             estimate_text(r.intercept), estimate_text(r.slope)]
        )  # fmt: skip
    return [
        "## Calibration",
        "",
        f"Expected calibration error over {c.n_bins} equal-width bins of P(COVID); Brier score "
        "(bootstrap interval); calibration intercept (in-the-large: 0 is ideal, > 0 means the "
        "scores are too low) and slope (1 is ideal, < 1: too extreme) from a logistic "
        "recalibration, with Wald intervals. Platt and temperature scaling are fitted on the "
        "val split and applied to these scores. " + fitted_on_text(c),
        "",
        table(["Scores", "ECE", "Brier", "Intercept", "Slope"], rows),
        "",
    ]


def subgroup_section(evaluation: Evaluation) -> list[str]:
    """Per-source and per-finding tables at the model's threshold."""
    if not evaluation.subgroups:
        return []
    lines = [
        "## Subgroups",
        "",
        f"At the model's threshold {evaluation.threshold:g}. AUROC needs both classes in a "
        "subgroup; subgroups have no AUROC interval.",
        "",
    ]
    header = [
        "Value", "Images", "COVID", "non-COVID", "AUROC", "AP",
        *point_header(evaluation.confidence)[1:],
    ]  # fmt: skip
    for column, groups in evaluation.subgroups.items():
        rows = [
            [
                g.value,
                g.counts.n,
                g.counts.n_positive,
                g.counts.n_negative,
                number(g.auroc),
                number(g.average_precision),
                *point_row(g.point)[1:],
            ]  # fmt: skip
            for g in groups
        ]
        lines += [f"### By {column}", "", table(header, rows), ""]
    return lines


def undefined_section(evaluation: Evaluation) -> list[str]:
    """Every quantity reported as n/a, with the reason."""
    notes = [f"- {key}: {reason}" for key, reason in evaluation.undefined.items()]
    for point in [*evaluation.fixed_points, *evaluation.chosen_points]:
        if point.undefined and point.threshold is not None:
            label = rule_name(point)
            notes += [f"- {key} at {label}: {why}" for key, why in point.undefined.items()]
    if not notes:
        return []
    return ["## Undefined quantities", "", *dict.fromkeys(notes), ""]


def skipped_section(evaluation: Evaluation) -> list[str]:
    """A paragraph naming the files left out under ``data.on_bad_file=skip``, if any."""
    skipped = list(evaluation.skipped)
    if not skipped:
        return []
    names = "; ".join(f"`{printable(path)}`" for path in skipped[:20])
    more = f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
    return [
        f"{len(skipped)} unreadable file(s) were left out (data.on_bad_file=skip): {names}{more}.",
        "",
    ]


def collapse_notes(evaluation: Evaluation) -> list[str]:
    """Per tabulated grouping: a group holding both classes whose AUROC interval lies below the
    overall AUROC, and most images in single-class sources (:mod:`deepcovid.results.collapse`)."""
    notes = []
    for column, groups in evaluation.subgroups.items():
        aurocs = [GroupAuroc(g.value, g.counts.n, g.counts.n_positive, g.auroc, g.auroc_ci)
                  for g in groups]  # fmt: skip
        found = collapse_sentences(column, aurocs, evaluation.auroc, evaluation.confidence)
        notes += [f"{sentence}." for sentence in found]
    return notes


def notes_section(evaluation: Evaluation) -> list[str]:
    """Warnings a reader must see next to the numbers."""
    notes = [*collapse_notes(evaluation), *evaluation.notes]
    if not notes:
        return []
    return ["## Read these numbers with care", "", *[f"- {n}" for n in notes], ""]


def results_section(evaluation: Evaluation, plots_dir: str = "plots") -> str:
    """report.md: a results section in the paper's style."""
    lines = [
        f"# Results: {evaluation.model.backbone} on the {evaluation.split} split",
        "",
        data_sentence(evaluation),
        "",
        *skipped_section(evaluation),
        *notes_section(evaluation),
        "## Discrimination",
        "",
        discrimination_sentence(evaluation),
        "",
        *chosen_section(evaluation),
        "## Sensitivity and specificity at fixed thresholds",
        "",
        table(point_header(evaluation.confidence), [point_row(p) for p in evaluation.fixed_points]),
        "",
        *decision_section(evaluation),
        *calibration_section(evaluation),
        *subgroup_section(evaluation),
        "## Figures",
        "",
        *[f"![{title}]({plots_dir}/{name}.png)" for name, title in PLOTS.items()],
        "",
        *undefined_section(evaluation),
    ]
    return "\n".join(lines).rstrip() + "\n"
