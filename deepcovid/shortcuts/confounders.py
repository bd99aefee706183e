"""The confounder audit: for each grouping of the images (source, view, sex, age band,
institution, manufacturer, or any column of the sample table), its association with the label
(counts, Cramér's V), the AUROC within each value holding both classes, a stratum-balanced
AUROC, and the probe of the penultimate features for it against the label alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats.contingency import association

from deepcovid import CLASS_TITLES
from deepcovid.metrics.bootstrap import bootstrap_interval
from deepcovid.metrics.discrimination import auroc
from deepcovid.metrics.operating_points import NO_INTERVAL, Interval
from deepcovid.metrics.undefined import UndefinedMetric
from deepcovid.shortcuts.probe import GroupProbe, call_columns, group_probe

# audit.confounders=null audits each of these that the data carries
DEFAULT_CONFOUNDERS = ("source", "view", "sex", "age_band", "institution", "manufacturer")
BALANCED_ESTIMATOR = (
    "the AUROC over COVID–non-COVID pairs within one value only: pairs across values left out, "
    "each value weighted by its pairs"
)


@dataclass(frozen=True)
class StratumAuroc:
    """One value's counts and its AUROC with its patient bootstrap interval, or why there is
    none (one class only)."""

    value: str
    n: int
    n_positive: int
    auroc: float | None
    reason: str | None = None
    auroc_ci: Interval = NO_INTERVAL


@dataclass(frozen=True)
class Confounder:
    """One grouping's audit over the ``n`` images that have a value. ``strata``: per value its
    counts and AUROC; ``auroc``: of those images, the reference; ``balanced_auroc``: see
    :data:`BALANCED_ESTIMATOR`; ``single_class``: values holding one class (value → class) and
    ``single_class_share`` the share of images in them; ``undefined``: number → why not."""

    column: str
    n: int
    strata: list[StratumAuroc]
    cramers_v: float | None
    auroc: float | None
    balanced_auroc: float | None
    balanced_auroc_ci: Interval = NO_INTERVAL
    probe: GroupProbe | None = None
    single_class: dict[str, str] = field(default_factory=dict)
    single_class_share: float = 0.0
    undefined: dict[str, str] = field(default_factory=dict)


def has_value(images: pd.DataFrame, column: str) -> pd.Series:
    """Rows whose ``column`` holds a value (not missing, not blank)."""
    cells = images[column]
    return cells.notna() & (cells.astype(str).str.strip() != "")


def confounder_columns(
    table: pd.DataFrame, requested: Sequence[str] | None
) -> tuple[list[str], dict[str, str]]:
    """The columns to audit and, for each left out, why. ``requested`` None: each of
    :data:`DEFAULT_CONFOUNDERS` the data carries; a named column the table lacks is refused."""
    if requested is not None:
        absent = [c for c in requested if c not in table]
        if absent:
            raise ValueError(
                f"audit.confounders names {absent}, which the sample table does not have; its "
                f"columns: {', '.join(table.columns)}. Name those (manifest columns deepcovid "
                "reads) or fix audit.confounders in conf/audit/default.yaml"
            )
    columns, skipped = [], {}
    for column in DEFAULT_CONFOUNDERS if requested is None else requested:
        if column in table and has_value(table, column).any():
            columns.append(column)
        else:
            skipped[f"confounder {column}"] = f"no image has a {column}"
    return columns, skipped


def strata_aurocs(
    rows: pd.DataFrame, column: str, resamples: int, confidence: float, seed: int
) -> list[StratumAuroc]:
    """The AUROC within each value with its (patient) bootstrap interval; a value holding one
    class is reported as such."""
    found = []
    for value, group in rows.groupby(rows[column].astype(str), sort=True):
        label = group["label"].to_numpy(dtype=int)
        prob = group["prob_covid"].to_numpy(dtype=np.float64)
        positives = int(label.sum())
        try:
            score = auroc(label, prob)
        except UndefinedMetric:
            only = CLASS_TITLES[int(positives > 0)]
            reason = f"only {only} images: sensitivity or specificity only"
            found.append(StratumAuroc(str(value), len(group), positives, None, reason))
            continue
        ids = group["patient_id"].to_numpy() if group["patient_id"].notna().any() else None
        try:
            drawn = bootstrap_interval(label, prob, auroc, ids, resamples, confidence, seed)
            ci, reason = (drawn.low, drawn.high), None
        except UndefinedMetric as why:
            ci, reason = NO_INTERVAL, f"no interval: {why}"
        found.append(StratumAuroc(str(value), len(group), positives, score, reason, ci))
    return found


def cramers_v(rows: pd.DataFrame, column: str) -> float:
    """Cramér's V of ``column`` × label (no continuity correction)."""
    counts = pd.crosstab(rows[column].astype(str), rows["label"].astype(int))
    if counts.shape[0] < 2 or counts.shape[1] < 2:
        raise UndefinedMetric(
            f"{counts.shape[0]} {column} value(s) and {counts.shape[1]} class(es): Cramér's V "
            "needs two of each"
        )
    return float(association(counts.to_numpy(), method="cramer"))


def stratified_auroc(coded: np.ndarray, prob_covid: np.ndarray) -> float:
    """:data:`BALANCED_ESTIMATOR` of ``coded`` = 2 × value code + label (so that the patient
    bootstrap, which resamples (label, score) pairs, carries each image's value)."""
    value, label = np.divmod(np.asarray(coded, dtype=int), 2)
    concordant, pairs = 0.0, 0
    for code in np.unique(value):
        inside = value == code
        positives, negatives = label[inside].sum(), (1 - label[inside]).sum()
        if positives and negatives:
            concordant += auroc(label[inside], prob_covid[inside]) * positives * negatives
            pairs += int(positives * negatives)
    if not pairs:
        raise UndefinedMetric("no value holds both classes: no pair within one value")
    return concordant / pairs


def balanced_auroc(
    rows: pd.DataFrame, column: str, resamples: int, confidence: float, seed: int
) -> tuple[float, Interval, str | None]:
    """:func:`stratified_auroc` of ``rows`` with its patient bootstrap interval (and why there
    is none)."""
    codes = pd.factorize(rows[column].astype(str), sort=True)[0]
    coded = 2 * codes + rows["label"].to_numpy(dtype=int)
    prob = rows["prob_covid"].to_numpy(dtype=np.float64)
    value = stratified_auroc(coded, prob)
    ids = rows["patient_id"].to_numpy() if rows["patient_id"].notna().any() else None
    try:
        drawn = bootstrap_interval(coded, prob, stratified_auroc, ids, resamples, confidence, seed)
    except UndefinedMetric as why:
        return value, NO_INTERVAL, f"no interval: {why}"
    return value, (drawn.low, drawn.high), None


def probe_confounders(
    images: pd.DataFrame, features: np.ndarray, columns: Sequence[str], seed: int
) -> tuple[pd.DataFrame, dict[str, GroupProbe | str]]:
    """``images`` with each column's probe calls (:func:`call_columns`, empty where not
    probed), and per column its probe or why there is none."""
    images, probes = images.copy(), {}
    for column in columns:
        known = has_value(images, column).to_numpy()
        for name in call_columns(column).values():
            images[name] = None
        try:
            probe, calls = group_probe(features[known], images[known], column, seed)
        except UndefinedMetric as reason:
            probes[column] = str(reason)
            continue
        images.loc[known, list(calls)] = calls.to_numpy()
        probes[column] = probe
    return images, probes


def audit_confounder(
    images: pd.DataFrame,
    column: str,
    probe: GroupProbe | str,
    resamples: int,
    confidence: float,
    seed: int,
) -> Confounder:
    """One grouping's :class:`Confounder` from ``images.csv``'s rows and its probe."""
    rows = images[has_value(images, column)]
    undefined = {} if isinstance(probe, GroupProbe) else {"probe": probe}
    strata = strata_aurocs(rows, column, resamples, confidence, seed)
    numbers: dict[str, float | None] = {}
    for name, compute in (("cramers_v", lambda: cramers_v(rows, column)),
                          ("auroc", lambda: auroc(rows["label"].to_numpy(dtype=int),
                                                  rows["prob_covid"].to_numpy(np.float64))),
                          ("balanced_auroc", lambda: balanced_auroc(
                              rows, column, resamples, confidence, seed))):  # fmt: skip
        try:
            numbers[name] = compute()
        except UndefinedMetric as why:
            numbers[name], undefined[name] = None, str(why)
    balanced, balanced_ci = None, NO_INTERVAL
    if numbers["balanced_auroc"] is not None:
        balanced, balanced_ci, why = numbers["balanced_auroc"]
        if why:
            undefined["balanced_auroc_ci"] = why
    single = {
        s.value: CLASS_TITLES[int(s.n_positive > 0)] for s in strata if s.n_positive in (0, s.n)
    }
    return Confounder(
        column=column,
        n=len(rows),
        strata=strata,
        cramers_v=numbers["cramers_v"],
        auroc=numbers["auroc"],
        balanced_auroc=balanced,
        balanced_auroc_ci=balanced_ci,
        probe=probe if isinstance(probe, GroupProbe) else None,
        single_class=single,
        single_class_share=sum(s.n for s in strata if s.value in single) / len(rows),
        undefined=undefined,
    )
