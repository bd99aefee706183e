from pathlib import Path

import pytest
import torch

from deepcovid.data.datamodule import XrayDataModule
from deepcovid.data.splits import patients_in_several_splits
from tests.conftest import CXR_DEV, requires_real_data


def test_generated_dataset_batches(covidx5k_shared: Path) -> None:
    dm = XrayDataModule(
        str(covidx5k_shared),
        image_size=32,
        batch_size=4,
        num_workers=0,
        val_fraction=0.25,
        oversample_factor=2,
    )
    dm.setup()
    sizes = dm.table.groupby("split").size().to_dict()
    assert sizes["test"] == 14 and sizes["train"] + sizes["val"] == 36
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    # ImageNet-normalised: roughly centred values, not raw [0, 255]
    assert -3 < batch["image"].mean() < 3
    assert dm.table.loc[batch["index"].tolist(), "label"].tolist() == batch["label"].tolist()
    n_train = sizes["train"]
    n_covid = int(dm.split("train")["label"].sum())
    assert len(dm.train_dataloader().sampler) == n_train + n_covid  # minority drawn twice


def test_weighted_loss_and_no_balance(covidx5k_shared: Path) -> None:
    dm = XrayDataModule(str(covidx5k_shared), balance="weighted_loss", num_workers=0)
    dm.setup()
    weights = dm.loss_weights()
    assert weights is not None and weights[1] > weights[0]  # COVID is the minority here
    assert XrayDataModule(str(covidx5k_shared), balance="none").loss_weights() is None
    with pytest.raises(ValueError, match="data.balance"):
        XrayDataModule(str(covidx5k_shared), balance="smote")


@requires_real_data
def test_real_cxr_dev_splits_by_patient() -> None:
    dm = XrayDataModule(str(CXR_DEV), image_size=64, batch_size=8, num_workers=0, seed=1)
    dm.setup()
    table = dm.table
    counts = table.groupby(["split", "label"]).size().to_dict()
    assert counts[("test", 1)] == 106 and counts[("test", 0)] == 29
    assert counts[("train", 1)] + counts[("val", 1)] == 218
    assert counts[("train", 0)] + counts[("val", 0)] == 58
    assert counts[("val", 0)] > 0 and counts[("val", 1)] > 0
    assert patients_in_several_splits(table) == {}
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (8, 3, 64, 64)
