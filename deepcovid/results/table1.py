"""Table 1 by partition: per split (train / val / test, of one fold when k-fold) the images,
patients, COVID share and the distribution of every metadata column the data carries, as
``table1.md`` and ``table1.csv`` (one row per partition, characteristic and level)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deepcovid import CLASS_NAMES
from deepcovid.results.markdown import table
from deepcovid.utils.files import write_csv_atomic, write_text_atomic

SPLIT_ORDER = ("train", "val", "test")
ALL = "all"
# Categorical columns of the sample table (data/samples.py, data/metadata.py) summarised as
# counts per value; age as mean ± sd; age_band is derived from age and left out.
CATEGORICAL = ("source", "finding", "view", "supine", "sex", "institution", "manufacturer")
NOT_RECORDED = "not recorded"
CSV_COLUMNS = ["partition", "characteristic", "level", "count", "percent", "mean", "sd"]


def partition_name(split: str, fold: int | None, num_folds: int | None) -> str:
    """``train``, or ``train (fold 2 of 5)`` for a k-fold run."""
    return split if fold is None else f"{split} (fold {fold} of {num_folds})"


def present_columns(frame: pd.DataFrame) -> list[str]:
    """The metadata columns of :data:`CATEGORICAL` and ``age`` with at least one value."""
    wanted = [*CATEGORICAL, "age"]
    return [c for c in wanted if c in frame and frame[c].notna().any()]


def level_text(value: object) -> str:
    """A cell as a level name: ``yes``/``no`` for the supine flag, missing → not recorded."""
    if value is None or pd.isna(value):
        return NOT_RECORDED
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def levels_of(frame: pd.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """Per categorical column, its levels over all images (not recorded last), so every
    partition lists the same levels, absent ones as 0."""
    return {
        column: sorted(set(frame[column].map(level_text)), key=lambda v: (v == NOT_RECORDED, v))
        for column in columns
        if column != "age"
    }


def row(name: str, characteristic: str, level: str = "", **values: float | None) -> dict:
    """One row of the long table."""
    return {"partition": name, "characteristic": characteristic, "level": level, **values}


def share(name: str, characteristic: str, level: str, count: int, n: int) -> dict:
    """A count row with its percentage of the partition's ``n`` images."""
    return row(name, characteristic, level, count=count, percent=100 * count / n if n else None)


def partition_rows(
    name: str,
    rows: pd.DataFrame,
    levels: dict[str, list[str]],
    age: bool,
    any_id: bool,
    without_id: bool,
) -> list[dict]:
    """The long-format rows of one partition: ``levels`` of each categorical column, ``age``
    when the data has ages, patients when it has ids (``any_id``), the images without a
    patient id when some lack one."""
    n = len(rows)
    ids = rows["patient_id"].dropna()
    patients = ids.nunique() if any_id else None
    out = [row(name, "images", count=n), row(name, "patients", count=patients)]
    if without_id:
        out.append(share(name, "images without a patient id", "", n - len(ids), n))
    out += [
        share(name, "class", CLASS_NAMES[c], int((rows["label"] == c).sum()), n) for c in (1, 0)
    ]
    for column, names in levels.items():
        counts = rows[column].map(level_text).value_counts()
        out += [share(name, column, v, int(counts.get(v, 0)), n) for v in names]
    if age:
        ages = pd.to_numeric(rows["age"], errors="coerce").dropna()
        out.append(
            row(
                name,
                "age (years)",
                "mean ± sd",
                count=len(ages),
                mean=ages.mean() if len(ages) else None,
                sd=ages.std(ddof=1) if len(ages) > 1 else None,
            )
        )
        out.append(share(name, "age (years)", NOT_RECORDED, n - len(ages), n))
    return out


def table_one(
    frame: pd.DataFrame, fold: int | None = None, num_folds: int | None = None
) -> pd.DataFrame:
    """Table 1 of a sample table (columns split, label, patient_id and the metadata), long
    format: one row per partition (each split, then all images), characteristic and level."""
    columns = present_columns(frame)
    levels = levels_of(frame, columns)
    ids = frame["patient_id"]
    flags = {
        "age": "age" in columns,
        "any_id": bool(ids.notna().any()),
        "without_id": bool(ids.isna().any()),
    }
    splits = [s for s in SPLIT_ORDER if (frame["split"] == s).any()]
    rows = []
    for split in splits:
        part = frame[frame["split"] == split]
        rows += partition_rows(partition_name(split, fold, num_folds), part, levels, **flags)
    rows += partition_rows(ALL, frame, levels, **flags)
    return pd.DataFrame(rows, columns=CSV_COLUMNS).astype({"count": "Int64"})


def cell(row: pd.Series) -> str:
    """A Markdown cell: ``12``, ``12 (40.0 %)``, ``45.2 ± 10.1 (n = 30)``."""
    if row["level"] == "mean ± sd":
        if pd.isna(row["mean"]):
            return "n/a"
        sd = "n/a" if pd.isna(row["sd"]) else f"{row['sd']:.1f}"
        return f"{row['mean']:.1f} ± {sd} (n = {int(row['count'])})"
    if pd.isna(row["count"]):
        return "n/a"
    if pd.isna(row["percent"]):
        return str(int(row["count"]))
    return f"{int(row['count'])} ({row['percent']:.1f} %)"


def table_one_markdown(long: pd.DataFrame, title: str = "Table 1") -> str:
    """The long table as one Markdown table: characteristics as rows, partitions as columns."""
    partitions = list(dict.fromkeys(long["partition"]))
    keys = list(dict.fromkeys(zip(long["characteristic"], long["level"], strict=True)))
    cells = {(r.partition, r.characteristic, r.level): cell(r) for _, r in long.iterrows()}
    body = []
    for characteristic, level in keys:
        name = characteristic if not level else f"{characteristic}: {level}"
        body.append([name, *(cells.get((p, characteristic, level), "–") for p in partitions)])
    lines = [
        f"# {title}",
        "",
        "Images per partition; percentages are of the partition's images. Patients are "
        "distinct patient ids (images without one are not counted). Metadata columns are shown "
        "when the data carries at least one value.",
        "",
        table(["characteristic", *partitions], body),
    ]
    return "\n".join(lines) + "\n"


def write_table_one(
    frame: pd.DataFrame,
    output_dir: str | Path,
    fold: int | None = None,
    num_folds: int | None = None,
) -> dict[str, Path]:
    """Write ``table1.csv`` and ``table1.md`` under ``output_dir``."""
    long = table_one(frame, fold, num_folds)
    output_dir = Path(output_dir)
    return {
        "table1": write_text_atomic(table_one_markdown(long), output_dir / "table1.md"),
        "table1_csv": write_csv_atomic(long, output_dir / "table1.csv"),
    }


def read_table_one(path: str | Path) -> pd.DataFrame:
    """``table1.csv`` as written: levels as text (empty, not NaN), counts as integers."""
    frame = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in CSV_COLUMNS[3:]})
    return frame.astype({"level": str, "count": "Int64"})
