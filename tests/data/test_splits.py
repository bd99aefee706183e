import numpy as np
import pandas as pd
import pytest

from deepcovid.data.splits import assign_splits, carve_split, patients_in_several_splits


def synthetic_table(n: int = 200, patients: bool = True, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.25).astype(int)
    patient = [f"p{i // 3}" for i in range(n)] if patients else [None] * n
    return pd.DataFrame(
        {
            "path": [f"x{i}.png" for i in range(n)],
            "label": label,
            "split": "train",
            "patient_id": patient,
            "source": None,
            "finding": None,
        }
    )


def test_carve_is_seeded_stratified_and_grouped() -> None:
    table = synthetic_table()
    # patients share a label here, as in real data
    table["label"] = table["patient_id"].map(lambda p: int(int(p[1:]) % 4 == 0))
    a = carve_split(table, 0.2, seed=3, source="train", target="val")
    b = carve_split(table, 0.2, seed=3, source="train", target="val")
    c = carve_split(table, 0.2, seed=4, source="train", target="val")
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()
    val = a[a["split"] == "val"]
    assert 0.15 < len(val) / len(a) < 0.25
    assert abs(val["label"].mean() - a["label"].mean()) < 0.08
    assert patients_in_several_splits(a) == {}


def test_without_patient_ids_every_image_is_its_own_group() -> None:
    table = synthetic_table(patients=False)
    out = carve_split(table, 0.1, seed=0, source="train", target="val")
    assert (out["split"] == "val").sum() == pytest.approx(20, abs=2)


def test_assign_splits_carves_test_only_when_missing() -> None:
    table = synthetic_table()
    table.loc[:19, "split"] = "test"
    out = assign_splits(table, val_fraction=0.1, test_fraction=0.3, seed=0)
    assert (out["split"] == "test").sum() == 20  # the given test split is kept as is
    assert (out["split"] == "val").sum() > 0
    out2 = assign_splits(synthetic_table(), 0.1, 0.3, seed=0)
    assert set(out2["split"]) == {"train", "val", "test"}
    assert patients_in_several_splits(out2) == {}


def test_leak_detection() -> None:
    table = synthetic_table(9)
    table.loc[0, "split"] = "test"  # p0 now in train and test
    assert patients_in_several_splits(table) == {"p0": ["test", "train"]}


def test_too_few_groups_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="only 3 patient group"):
        carve_split(synthetic_table(9), 0.2, 0, "train", "val")
