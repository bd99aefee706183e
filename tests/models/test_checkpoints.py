"""Checkpoints: what they carry, safe loading, and one clear error for a damaged file."""

from __future__ import annotations

import os
import pathlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepcovid.models.checkpoints import (
    CorruptCheckpointError,
    LegacyCheckpointError,
    UnsafeCheckpointError,
    load_classifier,
    read_checkpoint,
    read_record,
    resume_checkpoint,
)
from deepcovid.models.record import CHECKPOINT_KEY, MissingRecordError
from tests.conftest import REPO, best_checkpoint


def test_the_record_says_how_to_run_the_model_and_what_it_was_trained_on(tiny_run: Path):
    best = best_checkpoint(tiny_run)
    record = read_record(best)
    assert (record.backbone, record.target_layer, record.threshold) == ("resnet18", "layer4", 0.2)
    prep = record.preprocessing
    assert (prep.image_size, prep.crop_ratio, prep.channels) == (32, 0.875, 3)
    assert prep.mean == pytest.approx((0.485, 0.456, 0.406))
    assert record.class_names == ("non-covid", "covid") and record.pretrained_on == ()
    assert set(record.operating_points) == {"target_sensitivity", "youden", "target_specificity"}
    val = pd.read_csv(tiny_run / "predictions" / "val.csv")
    assert len(record.val_predictions) == len(val) == 9
    assert [str(tiny_run.parent)] != record.val_predictions["path"].str[:1].tolist()
    assert record.val_predictions["path"].str.startswith("train/").all()  # relative to the root
    assert record.val_epoch == torch.load(best, weights_only=True)["epoch"]
    data = record.data
    assert data.n_images == 50 and len(data.members["test"]) == 14 and len(data.fingerprint) == 64
    assert data.split_origin["val"] == "carved from train (data.val_fraction=0.25)"
    assert data.balance == "oversample"  # 9 COVID drawn 5 times, 18 non-COVID once
    assert data.training_prevalence == pytest.approx(45 / 63)


def test_each_checkpoint_carries_its_own_val_predictions(tiny_run: Path) -> None:
    last = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    best = torch.load(best_checkpoint(tiny_run), weights_only=True)
    assert last[CHECKPOINT_KEY]["val_epoch"] == last["epoch"] == 1
    assert best[CHECKPOINT_KEY]["val_epoch"] == best["epoch"]


def test_a_truncated_checkpoint_is_named_with_the_fix(tiny_run: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.ckpt"
    data = best_checkpoint(tiny_run).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    for read in (read_checkpoint, read_record, load_classifier):
        with pytest.raises(CorruptCheckpointError, match=f"{cut}: not a readable checkpoint"):
            read(cut)
    (tmp_path / "zero.ckpt").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="truncated or damaged"):
        read_checkpoint(tmp_path / "zero.ckpt")


def test_a_legacy_format_checkpoint_is_named_with_its_conversion(tiny_run: Path, tmp_path):
    """Not "truncated or damaged": the legacy (non-zip) format, and the conversion that works."""
    state = torch.load(best_checkpoint(tiny_run), weights_only=True)
    old = tmp_path / "old.ckpt"
    torch.save(state, old, _use_new_zipfile_serialization=False)
    for read in (read_checkpoint, load_classifier):
        with pytest.raises(LegacyCheckpointError, match=f"{old}: a checkpoint in torch's legacy"):
            read(old)
    converted = tmp_path / "converted.ckpt"
    torch.save(torch.load(old, weights_only=True), converted)  # the conversion it names
    assert (
        load_classifier(converted).record.threshold
        == read_record(best_checkpoint(tiny_run)).threshold
    )


def test_resume_from_a_damaged_last_names_the_newest_intact_one(tiny_run: Path, tmp_path: Path):
    run = tmp_path / "checkpoints"
    shutil.copytree(tiny_run / "checkpoints", run)
    assert resume_checkpoint("last", run) == str(run / "last.ckpt")
    best = best_checkpoint(tmp_path)
    os.utime(best, (1, 1))  # older than last.ckpt
    data = (run / "last.ckpt").read_bytes()
    (run / "last.ckpt").write_bytes(data[:1000])  # the disk filled up while it was written
    with pytest.raises(CorruptCheckpointError) as error:
        resume_checkpoint("last", run)
    assert f"newest intact checkpoint of this run is {best}" in str(error.value)
    assert f"ckpt_path={best}" in str(error.value)


def test_pickled_objects_are_refused_unless_allowed(tiny_run: Path, tmp_path: Path) -> None:
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    state["hyper_parameters"]["note"] = pathlib.PurePosixPath("any/python/object")
    unsafe = tmp_path / "unsafe.ckpt"
    torch.save(state, unsafe)
    with pytest.raises(UnsafeCheckpointError, match="allow_pickle=true") as error:
        load_classifier(unsafe)
    assert "format=safetensors allow_pickle=true" in str(error.value)
    assert load_classifier(unsafe, allow_pickle=True).hparams.backbone == "resnet18"


def test_config_from_a_checkpoint_is_never_instantiated(tiny_run: Path, tmp_path: Path) -> None:
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    target = {"_target_": "os.system", "command": "touch pwned"}
    state["hyper_parameters"] |= {"optimizer": target, "scheduler": target}
    planted = tmp_path / "planted.ckpt"
    torch.save(state, planted)
    model = load_classifier(planted)
    assert model.optimizer_factory is None and model.scheduler_factory is None
    state["hyper_parameters"]["_instantiator"] = "os.system"
    torch.save(state, planted)
    with pytest.raises(ValueError, match="allowlist"):
        load_classifier(planted)
    assert not (REPO / "pwned").exists() and not Path("pwned").exists()


def test_a_checkpoint_without_a_record_is_refused_by_name(tiny_run: Path, tmp_path: Path):
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    del state[CHECKPOINT_KEY]
    bare = tmp_path / "bare.ckpt"
    torch.save(state, bare)
    with pytest.raises(MissingRecordError, match=f"{bare}: holds no deepcovid record"):
        load_classifier(bare)


def test_loaded_model_keeps_its_provenance(tiny_run: Path) -> None:
    model = load_classifier(best_checkpoint(tiny_run))
    assert not model.training and model.record.backbone == "resnet18"
    assert model.pretrained_on == ()  # trained from scratch: no pretraining corpora


def test_a_record_written_before_the_split_settings_were_grouped_still_loads(
    tiny_run: Path, tmp_path: Path
) -> None:
    """Older checkpoints keep seed, fractions, folds and held-out source flat in their data."""
    state = torch.load(best_checkpoint(tiny_run), weights_only=True)
    data = state[CHECKPOINT_KEY]["data"]
    split = data.pop("split")
    assert split["seed"] == 42 and split["val_fraction"] == 0.25  # written grouped, plain values
    data |= {key: split[key] for key in ("seed", "val_fraction", "test_fraction", "num_folds")}
    data["fold"] = None  # and no holdout_source: older still
    old = tmp_path / "old.ckpt"
    torch.save(state, old)
    assert read_record(old).data == read_record(best_checkpoint(tiny_run)).data
