import numpy as np
import pandas as pd
import pytest

from deepcovid.data.splits import (
    SplitError,
    assign_external_splits,
    assign_fold,
    assign_splits,
    carve_split,
    patients_in_several_splits,
)


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
    out, origin = assign_splits(table, val_fraction=0.1, test_fraction=0.3, seed=0)
    assert (out["split"] == "test").sum() == 20  # the given test split is kept as is
    assert (out["split"] == "val").sum() > 0
    assert origin == {
        "train": "given",
        "test": "given",
        "val": "carved from train (data.val_fraction=0.1)",
    }
    out2, origin2 = assign_splits(synthetic_table(), 0.1, 0.3, seed=0)
    assert set(out2["split"]) == {"train", "val", "test"}
    assert origin2["test"] == "carved from train (data.test_fraction=0.3)"
    assert patients_in_several_splits(out2) == {}


def test_leak_detection() -> None:
    table = synthetic_table(9)
    table.loc[0, "split"] = "test"  # p0 now in train and test
    assert patients_in_several_splits(table) == {"p0": ["test", "train"]}


def test_too_few_groups_is_a_clear_error() -> None:
    with pytest.raises(SplitError, match=r"only 3 patient group\(s\) for 5 parts"):
        carve_split(synthetic_table(9), 0.2, 0, "train", "val")
    table = synthetic_table(30)
    table["label"] = 0
    table.loc[:2, "label"] = 1  # one patient with COVID: it cannot be on both sides
    with pytest.raises(SplitError, match=r"the covid class has only 1 patient group\(s\)"):
        carve_split(table, 0.2, 0, "train", "val")


def test_folds_cover_train_and_val_once_and_leave_test_alone() -> None:
    table = synthetic_table(300)
    table["label"] = table["patient_id"].map(lambda p: int(int(p[1:]) % 4 == 0))
    table.loc[:29, "split"] = "test"
    table.loc[30:59, "split"] = "val"  # a given val split joins the pool
    held = []
    for fold in range(5):
        out, origin = assign_splits(table, 0.1, 0.2, seed=1, num_folds=5, fold=fold)
        assert out["split"].iloc[:30].eq("test").all()
        assert origin["val"].startswith(f"fold {fold} of 5")
        assert patients_in_several_splits(out[out["split"] != "test"]) == {}
        held.append(set(out.index[out["split"] == "val"]))
    assert sum(len(h) for h in held) == 270 and set.union(*held) == set(range(30, 300))
    assert all(
        abs(table.loc[list(h), "label"].mean() - table["label"].iloc[30:].mean()) < 0.1
        for h in held
    )


def test_fold_errors_name_the_class_and_the_setting() -> None:
    table = synthetic_table(60)
    table["label"] = 0
    table.loc[:2, "label"] = 1  # one patient with COVID images
    with pytest.raises(SplitError, match=r"covid class has only 1 patient group\(s\) for 3 parts"):
        assign_fold(table, 3, 0, seed=0)
    with pytest.raises(SplitError, match="num_folds=3, data.fold=3"):
        assign_fold(table, 3, 3, seed=0)


def test_external_splits() -> None:
    table = synthetic_table(60)
    table.loc[:19, "split"] = "test"
    only_test, origin = assign_external_splits(table, with_val=False, val_fraction=0.2, seed=0)
    assert len(only_test) == 20 and origin == {"test": "the data's own test split"}
    unsplit = synthetic_table(60).assign(split=None)
    every, origin = assign_external_splits(unsplit, with_val=True, val_fraction=0.25, seed=0)
    assert set(every["split"]) == {"test", "val"} and len(every) == 60
    assert origin["test"] == "every image of the data" and origin["val"].startswith("carved")
    assert patients_in_several_splits(every) == {}
