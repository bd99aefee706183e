"""Cross-validation folds and leave-one-source-out on the real cxr-dev radiographs: every
train+val image is out-of-fold exactly once, no patient in two folds, and the held-out source
is never trained or validated on."""

from __future__ import annotations

import pandas as pd
import pytest

from deepcovid.data.datamodule import XrayDataModule
from deepcovid.utils.config import manifest_sources
from tests.conftest import CXR_DEV, requires_real_data

pytestmark = [requires_real_data, pytest.mark.realdata]


def splits(**kwargs) -> pd.DataFrame:
    datamodule = XrayDataModule(str(CXR_DEV), num_workers=0, seed=7, **kwargs)
    datamodule.setup("fit")
    return datamodule.table


def test_three_folds_hold_out_each_train_image_once_and_patients_whole() -> None:
    folds = [splits(num_folds=3, fold=k) for k in range(3)]
    given = pd.read_csv(CXR_DEV / "manifest.csv")
    pool = {str(CXR_DEV / p) for p in given.loc[given["path"].str.startswith("train/"), "path"]}
    held = [set(f.loc[f["split"] == "val", "path"]) for f in folds]
    assert sum(map(len, held)) == len(pool) == 276 and set.union(*held) == pool
    patients = [set(f.loc[f["split"] == "val", "patient_id"]) for f in folds]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    for table in folds:
        trained = set(table.loc[table["split"] == "train", "patient_id"])
        assert not trained & set(table.loc[table["split"] == "val", "patient_id"])
        test = table.loc[table["split"] == "test", "path"]
        assert len(test) == 135 and test.str.contains("/test/").all()  # the given test split


def test_leave_one_source_out_never_trains_on_the_held_out_source() -> None:
    choices = manifest_sources(str(CXR_DEV), "auto")  # the sweep's choices, one job each
    assert choices == "'COVID-19 image data collection','Figure 1 COVID-19 CXR initiative'"
    table = splits(holdout_source="Figure 1 COVID-19 CXR initiative")
    test = table[table["split"] == "test"]
    assert len(test) == 8 and (test["source"] == "Figure 1 COVID-19 CXR initiative").all()
    seen = table[table["split"] != "test"]
    assert len(seen) == 403 and (seen["source"] == "COVID-19 image data collection").all()
    assert not set(seen["patient_id"]) & set(test["patient_id"])


def test_a_source_whose_rest_has_one_class_cannot_be_left_out() -> None:
    from deepcovid.data.splits import SplitError

    with pytest.raises(SplitError, match=r"other source\(s\) hold 8 image\(s\), 8 COVID and 0 non"):
        splits(holdout_source="COVID-19 image data collection")
