"""Table 1 by partition: images, patients, classes, metadata levels and age per split, and
the run's own table equal to its predictions and splits."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from deepcovid.results.table1 import read_table_one, table_one, table_one_markdown


def test_table_one_counts_metadata_and_age_per_partition() -> None:
    frame = pd.DataFrame(
        {
            "split": ["train", "train", "train", "val", "test", "test"],
            "label": [1, 0, 1, 0, 1, 0],
            "patient_id": ["p1", "p1", "p2", None, "p3", "p4"],
            "source": ["A", "B", "A", "A", "B", None],
            "finding": [None] * 6,
            "view": ["PA", "AP", None, "PA", "PA", "AP"],
            "supine": [False, True, None, False, False, False],
            "sex": ["M", "F", "F", None, "M", "M"],
            "age": [40.0, 60.0, None, 30.0, 50.0, 70.0],
        }
    )
    long = table_one(frame, fold=2, num_folds=5)

    def cell(partition: str, characteristic: str, level: str = "") -> pd.Series:
        rows = long[
            (long["partition"] == partition)
            & (long["characteristic"] == characteristic)
            & (long["level"] == level)
        ]
        (row,) = rows.itertuples()
        return row

    train = "train (fold 2 of 5)"
    assert cell(train, "images").count == 3 and cell(train, "patients").count == 2
    assert cell("all", "patients").count == 4
    assert cell("val (fold 2 of 5)", "images without a patient id").count == 1
    assert cell(train, "class", "covid").percent == pytest.approx(200 / 3)
    assert cell("test (fold 2 of 5)", "source", "A").count == 0  # every level in every column
    assert cell("test (fold 2 of 5)", "source", "not recorded").count == 1
    assert cell(train, "supine", "yes").count == 1
    age = cell("all", "age (years)", "mean ± sd")
    assert (age.count, age.mean) == (5, 50.0)
    assert age.sd == pytest.approx(pd.Series([40.0, 60, 30, 50, 70]).std())
    assert "finding" not in set(long["characteristic"])  # no value: no rows
    markdown = table_one_markdown(long)
    assert "| age (years): mean ± sd | 50.0 ± 14.1 (n = 2) |" in markdown
    assert "| view: PA | 1 (33.3 %) | 1 (100.0 %) | 1 (50.0 %) | 3 (50.0 %) |" in markdown


def test_table_one_of_the_run_equals_its_predictions_and_splits(tiny_run: Path) -> None:
    long = read_table_one(tiny_run / "table1.csv")
    assert (tiny_run / "table1.md").read_text().startswith("# Table 1")
    data_check = json.loads((tiny_run / "data_check.json").read_text())

    def count(partition: str, characteristic: str, level: str = "") -> int:
        rows = long[
            (long["partition"] == partition)
            & (long["characteristic"] == characteristic)
            & (long["level"] == level)
        ]
        return int(rows["count"].iloc[0])

    for split in ("test", "val"):
        predictions = pd.read_csv(tiny_run / "predictions" / f"{split}.csv")
        assert count(split, "images") == len(predictions)
        assert count(split, "class", "covid") == predictions["label"].sum()
        assert count(split, "class", "non-covid") == (predictions["label"] == 0).sum()
    assert count("all", "images") == data_check["n_images"]
    in_splits = {r["split"] for r in data_check["counts"]}
    assert {p for p in long["partition"] if p != "all"} == in_splits
