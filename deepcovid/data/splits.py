"""Seeded, label-stratified splits that keep each patient in one split, and k-fold
cross-validation of train+val (sklearn ``StratifiedGroupKFold``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from deepcovid import CLASS_NAMES
from deepcovid.data.settings import SplitSettings

MIN_VAL_PER_CLASS = 20  # below this, checkpoint and threshold choice rest on very few images


@dataclass(frozen=True)
class DataRecord:
    """What defines a run's data and splits, stored in its checkpoints: evaluating the model on
    the same data again must reproduce exactly these splits."""

    root: str
    manifest: str | None
    fingerprint: str  # sha256 over (path relative to root, file sha256, label) of every image
    n_images: int
    split: SplitSettings
    split_origin: dict[str, str]
    members: dict[str, list[str]] = field(default_factory=dict)  # split → relative paths
    balance: str | None = None
    training_prevalence: float | None = None  # COVID share of the images drawn in training

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self)) | {"split": self.split.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataRecord:
        """From :meth:`to_dict`'s values, or an older record's (its split settings flat)."""
        own = {f.name for f in fields(cls)}
        split = SplitSettings.from_record(values.get("split") or values)
        return cls(**{k: v for k, v in values.items() if k in own} | {"split": split})


class SplitError(ValueError):
    """A split that cannot be made from the data; the message says why and what to change."""


def patient_groups(table: pd.DataFrame) -> np.ndarray:
    """Group ids for splitting: the patient id where known, else one group per image."""
    patient = table["patient_id"].astype(object)
    own = "image:" + table["path"].astype(str)
    return np.where(patient.notna(), "patient:" + patient.astype(str), own)


def check_groups_per_class(subset: pd.DataFrame, needed: int, n_splits: int, what: str) -> None:
    """Refuse a stratified grouped split into ``n_splits`` parts when a class has fewer than
    ``needed`` patient groups, or all classes together fewer than ``n_splits`` (sklearn's own
    messages do not say which class or what to do)."""
    groups = pd.Series(patient_groups(subset), index=subset.index)
    for label, name in enumerate(CLASS_NAMES):
        n_groups = groups[subset["label"] == label].nunique()
        if n_groups < needed:
            raise SplitError(
                f"cannot make {what}: the {name} class has only {n_groups} patient group(s) "
                f"for {n_splits} parts. Add data, or use fewer folds / a larger fraction."
            )
    if groups.nunique() < n_splits:
        raise SplitError(
            f"cannot make {what}: only {groups.nunique()} patient group(s) for {n_splits} "
            "parts. Add data, or use fewer folds / a larger fraction."
        )


def grouped_folds(subset: pd.DataFrame, n_splits: int, seed: int) -> list[np.ndarray]:
    """Positions (into ``subset``) of each of ``n_splits`` stratified, patient-grouped folds."""
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    labels, groups = subset["label"].to_numpy(), patient_groups(subset)
    return [held for _, held in splitter.split(np.zeros(len(subset)), labels, groups)]


def carve_split(
    table: pd.DataFrame, fraction: float, seed: int, source: str, target: str
) -> pd.DataFrame:
    """Move about ``fraction`` of the rows of split ``source`` to split ``target``.

    Stratified by label and grouped by patient (no patient in both), reproducible for a seed.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split fraction must lie in (0, 1), got {fraction}")
    table = table.copy()
    rows = np.flatnonzero((table["split"] == source).to_numpy())
    subset = table.iloc[rows]
    n_splits = max(2, round(1.0 / fraction))
    # each class needs a patient on both sides; every fold of k-fold needs both classes
    check_groups_per_class(subset, 2, n_splits, f"a {fraction:.0%} '{target}' split of '{source}'")
    held_out = grouped_folds(subset, n_splits, seed)[0]
    table.iloc[rows[held_out], table.columns.get_loc("split")] = target
    return table


def assign_fold(table: pd.DataFrame, num_folds: int, fold: int, seed: int) -> pd.DataFrame:
    """Fold ``fold`` of ``num_folds`` stratified, patient-grouped folds of train+val becomes
    val, the rest train; test is untouched."""
    if num_folds < 2 or not 0 <= fold < num_folds:
        raise SplitError(
            f"data.num_folds={num_folds}, data.fold={fold}: need num_folds ≥ 2 and "
            f"0 ≤ fold < num_folds"
        )
    table = table.copy()
    rows = np.flatnonzero(table["split"].isin(["train", "val"]).to_numpy())
    subset = table.iloc[rows]
    check_groups_per_class(subset, num_folds, num_folds, f"{num_folds} cross-validation folds")
    split = table.columns.get_loc("split")
    table.iloc[rows, split] = "train"
    table.iloc[rows[grouped_folds(subset, num_folds, seed)[fold]], split] = "val"
    return table


def assign_splits(
    table: pd.DataFrame,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    num_folds: int | None = None,
    fold: int | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Fill in the splits a table lacks, and say where each split came from.

    Unsplit rows become train; test (if the data has none) and val (if the data has none) are
    carved out of train. With ``num_folds``, val is fold ``fold`` of train+val instead.
    """
    table = table.copy()
    table["split"] = table["split"].where(table["split"].notna(), "train")
    given = set(table["split"])
    origin = {name: "given" for name in ("train", "val", "test") if name in given}
    if "test" not in given:
        table = carve_split(table, test_fraction, seed, "train", "test")
        origin["test"] = f"carved from train (data.test_fraction={test_fraction:g})"
    if num_folds is not None:
        fold = 0 if fold is None else fold
        table = assign_fold(table, num_folds, fold, seed)
        origin["val"] = f"fold {fold} of {num_folds} of train+val (data.num_folds, data.fold)"
        origin["train"] = f"the other {num_folds - 1} folds of train+val"
    elif "val" not in given:
        table = carve_split(table, val_fraction, seed, "train", "val")
        origin["val"] = f"carved from train (data.val_fraction={val_fraction:g})"
    return table, origin


def assign_external_splits(
    table: pd.DataFrame, with_val: bool, val_fraction: float, seed: int
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Another site's data, for evaluation only: its given test split, or every image, is the
    test split; ``with_val`` keeps its given val split or carves one out of test (for
    re-choosing thresholds on that site). Rows of its train split are left out."""
    given = set(table["split"].dropna())
    keep = ["test", "val"] if with_val else ["test"]
    if "test" in given:
        table = table[table["split"].isin(keep)].reset_index(drop=True)
        origin = {"test": "the data's own test split"}
    else:
        table = table.copy()
        own_val = table["split"] == "val"
        table["split"] = "test"
        if with_val:
            table.loc[own_val, "split"] = "val"
        origin = {"test": "every image of the data"}
    if with_val:
        if (table["split"] == "val").any():
            origin["val"] = "the data's own val split"
        else:
            table = carve_split(table, val_fraction, seed, "test", "val")
            origin["val"] = (
                f"carved from this site's test images (data.val_fraction={val_fraction:g})"
            )
    return table, origin


def assign_holdout_source(
    table: pd.DataFrame, source: str, val_fraction: float, seed: int
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Leave one source out: every image of ``source`` is test; the other sources' images
    (whatever split the data gives them) are train, with val carved out of them."""
    known = sorted(set(table["source"].dropna().astype(str)))
    if source not in known:
        raise SplitError(
            f"data.holdout_source={source!r} is not a source of the data; its sources: {known}"
        )
    table = table.copy()
    held = (table["source"].astype(str) == source).to_numpy()
    table["split"] = np.where(held, "test", "train")
    rest = table.loc[~held, "label"]
    if rest.nunique() < 2:
        raise SplitError(
            f"data.holdout_source={source!r}: the other source(s) hold {len(rest)} image(s), "
            f"{int(rest.sum())} COVID and {int((rest == 0).sum())} non-COVID, so no model can "
            "be trained without it. Leave out another source, or add data of the missing class."
        )
    table = carve_split(table, val_fraction, seed, "train", "val")
    origin = {
        "test": f"every image of source {source!r} (data.holdout_source)",
        "train": f"the other {len(known) - 1} source(s)",
        "val": f"carved from train (data.val_fraction={val_fraction:g})",
    }
    return table, origin


def make_splits(table: pd.DataFrame, split: SplitSettings) -> tuple[pd.DataFrame, dict[str, str]]:
    """The splits ``split`` asks for: another site's (external data), one source held out, or
    carved (and folded) from the data's own; with where each split came from."""
    if split.external_splits is not None:
        with_val = split.external_splits == "test_and_val"
        return assign_external_splits(table, with_val, split.val_fraction, split.seed)
    if split.holdout_source is not None:
        return assign_holdout_source(table, split.holdout_source, split.val_fraction, split.seed)
    return assign_splits(
        table, split.val_fraction, split.test_fraction, split.seed, split.num_folds, split.fold
    )


def patients_in_several_splits(table: pd.DataFrame) -> dict[str, list[str]]:
    """Patient ids that appear in more than one split, with the splits they appear in."""
    known = table[table["patient_id"].notna()]
    splits = known.groupby("patient_id")["split"].agg(lambda s: sorted(set(s)))
    return {str(p): s for p, s in splits.items() if len(s) > 1}
