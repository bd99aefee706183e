"""Discrimination that comes from telling groups apart, said in words: a group (a source, or
any value the evaluation tabulates) that holds both classes and whose AUROC interval lies below
the overall AUROC, and a split whose images mostly come from sources holding one class only.
Shared by report.md's "Read these numbers with care" and the audit's findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # light at run time, as markdown.py
    from deepcovid.metrics.operating_points import Interval

SOURCE = "source"  # the grouping whose single-class groups name the class


@dataclass(frozen=True)
class GroupAuroc:
    """One group's counts and AUROC with its interval ((None, None) when there is none)."""

    value: str
    n: int
    n_positive: int
    auroc: float | None
    auroc_ci: Interval

    @property
    def both_classes(self) -> bool:
        return 0 < self.n_positive < self.n


def collapsed_within(
    column: str, groups: Sequence[GroupAuroc], overall: float | None, confidence: float
) -> list[str]:
    """A sentence per group holding both classes whose AUROC interval lies below ``overall``."""
    if overall is None:
        return []
    found = []
    for g in groups:
        low, high = g.auroc_ci
        if not g.both_classes or g.auroc is None or high is None or high >= overall:
            continue
        found.append(
            f"Within {column} '{g.value}', which holds both classes ({g.n_positive} COVID, "
            f"{g.n - g.n_positive} non-COVID), the AUROC is {g.auroc:.3f} ({100 * confidence:g} "
            f"% CI {low:.3f}–{high:.3f}), below the {overall:.3f} of all images: the overall "
            f"AUROC comes largely from telling the {column} values apart, not COVID from "
            f"non-COVID within one; at a single {column} expect about {g.auroc:.3f}"
        )
    return found


def single_class_majority(groups: Sequence[GroupAuroc], overall: float | None) -> list[str]:
    """A sentence when most images come from sources holding one class only."""
    single = [g for g in groups if not g.both_classes]
    n_single, n_all = sum(g.n for g in single), sum(g.n for g in groups)
    if not n_all or 2 * n_single <= n_all:
        return []
    named = ", ".join(
        f"'{g.value}' ({g.n}, {'COVID' if g.n_positive else 'non-COVID'} only)" for g in single
    )
    mixed = [f"'{g.value}'" for g in groups if g.both_classes]
    where = (
        f"only within {', '.join(mixed)} can COVID be told from non-COVID at one source"
        if mixed
        else "no source holds both classes, so nothing here measures that"
    )
    auroc = "the overall AUROC" if overall is None else f"the overall AUROC of {overall:.3f}"
    return [
        f"{n_single} of {n_all} images come from sources holding one class only ({named}): "
        f"there the source names the class, so {auroc} may measure telling sources apart; "
        f"{where}"
    ]


def collapse_sentences(
    column: str, groups: Sequence[GroupAuroc], overall: float | None, confidence: float
) -> list[str]:
    """Every sentence of this module for one grouping (no final full stops)."""
    found = collapsed_within(column, groups, overall, confidence)
    if column == SOURCE:
        found += single_class_majority(groups, overall)
    return found
