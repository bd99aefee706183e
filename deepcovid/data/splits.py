"""Seeded, label-stratified splits that keep each patient in one split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def patient_groups(table: pd.DataFrame) -> np.ndarray:
    """Group ids for splitting: the patient id where known, else one group per image."""
    patient = table["patient_id"].astype(object)
    own = "image:" + table["path"].astype(str)
    return np.where(patient.notna(), "patient:" + patient.astype(str), own)


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
    groups = patient_groups(subset)
    n_splits = max(2, round(1.0 / fraction))
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(
            f"cannot carve a {fraction:.0%} '{target}' split out of '{source}': it has only "
            f"{n_groups} patient group(s). Add data or lower the fraction."
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    _, held_out = next(splitter.split(np.zeros(len(subset)), subset["label"], groups))
    table.iloc[rows[held_out], table.columns.get_loc("split")] = target
    return table


def assign_splits(
    table: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int
) -> pd.DataFrame:
    """Fill in the splits a table lacks: unsplit rows become train, then test (if the data
    has none) and val (if the data has none) are carved out of train."""
    table = table.copy()
    table["split"] = table["split"].where(table["split"].notna(), "train")
    if not (table["split"] == "test").any():
        table = carve_split(table, test_fraction, seed, "train", "test")
    if not (table["split"] == "val").any():
        table = carve_split(table, val_fraction, seed, "train", "val")
    return table


def patients_in_several_splits(table: pd.DataFrame) -> dict[str, list[str]]:
    """Patient ids that appear in more than one split, with the splits they appear in."""
    known = table[table["patient_id"].notna()]
    splits = known.groupby("patient_id")["split"].agg(lambda s: sorted(set(s)))
    return {str(p): s for p, s in splits.items() if len(s) > 1}
