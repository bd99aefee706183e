"""Metadata that carries confounders: view, sex, age (and its band), institution, manufacturer.

Manifest values are normalised to DICOM terms: ``view`` to ViewPosition (PA, AP, LL, RL, …;
"AP supine" → AP with ``supine`` true), ``sex`` to PatientSex (M, F, O), ``age`` to years.
DICOM inputs fill what the manifest leaves empty from their header (ViewPosition, PatientSex,
PatientAge such as ``045Y``, Manufacturer, InstitutionName); none of it is required.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

# DICOM ViewPosition defined terms (PS3.3 C.8.11.5.1.1) and the spellings that name each.
# A lateral whose side is not stated ("L", "lateral") is the standard chest lateral, LL.
VIEW_NAMES = {
    "pa": "PA", "posteroanterior": "PA", "postero-anterior": "PA",
    "ap": "AP", "anteroposterior": "AP", "antero-posterior": "AP", "ap erect": "AP",
    "ap semi erect": "AP", "ap upright": "AP",
    "ll": "LL", "left lateral": "LL", "l": "LL", "lat": "LL", "lateral": "LL",
    "rl": "RL", "right lateral": "RL",
    "lld": "LLD", "rld": "RLD", "llo": "LLO", "rlo": "RLO",
}  # fmt: skip
SUPINE_NAMES = {"ap supine", "supine ap", "aps", "ap (supine)"}  # → view AP, supine true
SEX_NAMES = {
    "m": "M", "male": "M", "man": "M",
    "f": "F", "female": "F", "woman": "F", "w": "F",
    "o": "O", "other": "O",
}  # fmt: skip
MAX_AGE = 130.0
# Age bands of the evaluation's subgroup tables: (lower bound in years, label); the labels sort
# in age order, as subgroup tables list their values.
AGE_BANDS = ((0.0, "0–39"), (40.0, "40–59"), (60.0, "60–79"), (80.0, "80+"))
# DICOM Age String (AS): nnnD/W/M/Y; a bare number (as some exports write) is years.
AGE_STRING = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([DWMY]?)\s*$", re.IGNORECASE)
DAYS_PER_UNIT = {"D": 1.0, "W": 7.0, "M": 365.25 / 12, "Y": 365.25, "": 365.25}
# Manifest columns of this module, the accepted values of each (for error messages).
ACCEPTED = {
    "view": "PA, AP, AP supine, LL, RL (lateral), LLD, RLD, LLO, RLO",
    "sex": "M, F, O (male, female, other)",
    "age": "years (e.g. 45 or 45.5) or a DICOM age string (045Y, 006M, 003W, 010D), 0 to 130",
}
TEXT_COLUMNS = ("institution", "manufacturer")
COLUMNS = ["view", "supine", "sex", "age", "age_band", *TEXT_COLUMNS]
DICOM_FIELDS = {
    "view": "ViewPosition",
    "sex": "PatientSex",
    "age": "PatientAge",
    "institution": "InstitutionName",
    "manufacturer": "Manufacturer",
}


def key(value: object) -> str:
    """A value as looked up: stripped, lower-cased, runs of spaces/underscores as one space."""
    return re.sub(r"[\s_]+", " ", str(value).strip().lower())


def view_of(value: object) -> tuple[str, bool] | None:
    """(ViewPosition, supine) of a view name, or None when it is not one."""
    name = key(value)
    if name in SUPINE_NAMES:
        return "AP", True
    return (VIEW_NAMES[name], False) if name in VIEW_NAMES else None


def sex_of(value: object) -> str | None:
    """M, F or O for a sex name, or None when it is not one."""
    return SEX_NAMES.get(key(value))


def age_of(value: object) -> float | None:
    """Age in years of a number or a DICOM age string, or None when it is not one."""
    match = AGE_STRING.match(str(value))
    if match is None:
        return None
    years = float(match.group(1)) * DAYS_PER_UNIT[match.group(2).upper()] / 365.25
    return round(years, 2) if math.isfinite(years) and years <= MAX_AGE else None


def age_band(age: float | None) -> str | None:
    """The band of :data:`AGE_BANDS` that ``age`` (years) falls in."""
    if age is None or pd.isna(age):
        return None
    return [label for low, label in AGE_BANDS if age >= low][-1]


PARSERS = {"view": view_of, "sex": sex_of, "age": age_of}


def unknown_values(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Per metadata column of ``frame`` (all cells strings): the non-empty cells it does not
    accept, indexed by row."""
    odd = {}
    for column, parse in PARSERS.items():
        if column in frame:
            cells = frame[column].str.strip()
            bad = cells[(cells != "") & cells.map(lambda v, p=parse: p(v) is None)]
            if not bad.empty:
                odd[column] = bad
    return odd


def parsed(frame: pd.DataFrame) -> pd.DataFrame:
    """The metadata columns of a checked manifest (string cells): view, supine, sex, age and
    the free-text institution and manufacturer; empty cells are None."""
    out = pd.DataFrame(index=frame.index)
    if "view" in frame:
        views = frame["view"].map(lambda v: view_of(v) if str(v).strip() else None)
        out["view"] = views.map(lambda v: v[0] if v else None)
        out["supine"] = views.map(lambda v: v[1] if v else None)
    if "sex" in frame:
        out["sex"] = frame["sex"].map(lambda v: sex_of(v) if str(v).strip() else None)
    if "age" in frame:
        out["age"] = frame["age"].map(lambda v: age_of(v) if str(v).strip() else None)
    for column in TEXT_COLUMNS:
        if column in frame:
            out[column] = frame[column].str.strip().replace("", None)
    return out


def dicom_metadata(path: str | Path) -> tuple[dict[str, object], list[str]]:
    """The metadata a DICOM file's header states ({column: value}, absent fields left out) and
    the header values that could not be read as such (e.g. ``ViewPosition 'XYZ'``). An
    unreadable header gives nothing: decoding the file reports it."""
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - the one read of every file names it (data.cache)
        return {}, []
    values: dict[str, object] = {}
    odd = []
    for column, keyword in DICOM_FIELDS.items():
        raw = str(header.get(keyword, "") or "").strip()
        if not raw:
            continue
        if column in TEXT_COLUMNS:
            values[column] = raw
            continue
        value = PARSERS[column](raw)
        if value is None:
            odd.append(f"{keyword} {raw!r}")
        elif column == "view":
            values["view"], values["supine"] = value
        else:
            values[column] = value
    return values, odd


def with_metadata(table: pd.DataFrame, dicom_suffixes: set[str]) -> pd.DataFrame:
    """``table`` with every column of :data:`COLUMNS`: DICOM rows' empty cells filled from
    their header (odd header values logged by file, left empty) and ``age_band`` from age."""
    table = table.copy()
    for column in COLUMNS:
        if column not in table:
            table[column] = None
        table[column] = table[column].astype(object)
    odd = {}
    for index, path in table["path"].items():
        if Path(str(path)).suffix.lower() not in dicom_suffixes:
            continue
        values, problems = dicom_metadata(path)
        for column, value in values.items():
            if pd.isna(table.at[index, column]):
                table.at[index, column] = value
        if problems:
            odd[str(path)] = problems
    if odd:
        shown = "; ".join(f"{p}: {', '.join(why)}" for p, why in list(odd.items())[:10])
        log.warning(
            "%d DICOM header(s) with values read as unknown (accepted: view %s; sex %s; "
            "age %s): %s. Fix the header or state the value in the manifest.",
            len(odd), ACCEPTED["view"], ACCEPTED["sex"], ACCEPTED["age"], shown,
        )  # fmt: skip
    table["age_band"] = table["age"].map(age_band)
    for column in COLUMNS:  # missing is None, as in the other columns; age is numeric
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    table["age"] = table["age"].astype(float)
    return table
