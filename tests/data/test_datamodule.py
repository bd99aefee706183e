import logging
from pathlib import Path

import pytest
import torch

from deepcovid.data.datamodule import XrayDataModule
from deepcovid.data.splits import patients_in_several_splits
from deepcovid.scope.check import ScopeChecker, load_checker
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
    assert dm.training_prevalence() == pytest.approx(2 * n_covid / (n_train + n_covid))


def test_record_fingerprints_the_data_and_lists_the_splits(covidx5k: Path) -> None:
    dm = XrayDataModule(str(covidx5k), num_workers=0, val_fraction=0.25, seed=3)
    record = dm.record()
    assert record.n_images == 50 and record.split.seed == 3 and record.split.val_fraction == 0.25
    assert record.split_origin == {
        "train": "given",
        "test": "given",
        "val": "carved from train (data.val_fraction=0.25)",
    }
    assert len(record.members["test"]) == 14 and record.members["test"][0].startswith("test/")
    assert record.members["val"] == sorted(dm.relative(p) for p in dm.split("val")["path"])
    again = XrayDataModule(str(covidx5k), num_workers=0, val_fraction=0.25, seed=3).record()
    assert again == record
    other_seed = XrayDataModule(str(covidx5k), num_workers=0, val_fraction=0.25, seed=4).record()
    assert other_seed.fingerprint == record.fingerprint
    assert other_seed.members["val"] != record.members["val"]
    image = next((covidx5k / "train" / "covid").iterdir())
    image.write_bytes(image.read_bytes() + b"\0")  # content changed, still decodes (PNG/JPEG)
    changed = XrayDataModule(str(covidx5k), num_workers=0, val_fraction=0.25, seed=3).record()
    assert changed.fingerprint != record.fingerprint


def test_weak_spots_are_logged(covidx5k_shared: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        XrayDataModule(str(covidx5k_shared), num_workers=0, val_fraction=0.25).setup()
    assert "has no patient ids: splits and intervals are per image" in caplog.text
    assert "the val split holds 3 COVID and 6 non-COVID images" in caplog.text
    assert "val: carved from train (data.val_fraction=0.25)" in caplog.text


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


def test_the_tested_split_is_read_from_the_files_whatever_the_cache(tmp_path: Path) -> None:
    """The cache's pixels of a large JPEG come from a reduced-scale decode; the test loader reads
    the files, as predict does, so train's final test scores what the model scores in use."""
    from benchmarks.gpu import radiograph

    seed = 0
    for folder in ("train/covid", "train/non", "test/covid", "test/non"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for i in range(4):
            radiograph(seed, 1200).save(tmp_path / "data" / folder / f"{i}.jpg", quality=90)
            seed += 1
    modules = {
        cache: XrayDataModule(
            str(tmp_path / "data"),
            image_size=64,
            val_fraction=0.25,
            num_workers=0,
            cache=cache,
            cache_dir=str(tmp_path / "cache"),
            cache_short_side=128,
        )  # fmt: skip
        for cache in (False, True)
    }
    for module in modules.values():
        module.setup("fit")
    uncached, cached = modules[False], modules[True]
    tested = next(iter(cached.test_dataloader()))["image"]
    assert torch.equal(tested, next(iter(uncached.test_dataloader()))["image"])
    validated = torch.stack([cached.dataset("val")[i]["image"] for i in range(2)])
    from_files = torch.stack([uncached.dataset("val")[i]["image"] for i in range(2)])
    assert not torch.equal(validated, from_files)  # val reads the cache: not the files' pixels


def test_scope_verdicts_come_from_the_first_pass_and_are_kept_for_unchanged_files(
    covidx5k: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scope check judges the images the first pass decodes (no read of its own), with the
    verdicts reading the files would give; a second setup on unchanged files judges none."""

    def module() -> XrayDataModule:
        return XrayDataModule(
            str(covidx5k), image_size=32, num_workers=0, out_of_scope="keep",
            cache_dir=str(tmp_path / "cache"),
        )  # fmt: skip

    read_by_scope: list[Path] = []
    check_paths = ScopeChecker.check_paths

    def counting(self: ScopeChecker, paths, *args, **kwargs):  # noqa: ANN001, ANN202
        paths = list(paths)
        read_by_scope.extend(paths)
        return check_paths(self, paths, *args, **kwargs)

    monkeypatch.setattr(ScopeChecker, "check_paths", counting)
    first = module()
    first.setup("fit")
    assert read_by_scope == []
    assert first.not_frontal  # generated images are not radiographs
    paths = [Path(p) for p in first.table["path"]]
    read, _ = check_paths(load_checker(), paths)
    assert {str(p) for p, v in read.items() if not v.in_scope} == set(first.not_frontal)
    monkeypatch.setattr(
        ScopeChecker, "check_inputs", lambda *a: pytest.fail("the scope check judged again")
    )
    monkeypatch.setattr(
        ScopeChecker, "check_paths", lambda *a: pytest.fail("the scope check read the files")
    )
    second = module()
    second.setup("fit")
    assert second.not_frontal == first.not_frontal
