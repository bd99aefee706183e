"""The data a recorded model is evaluated (or audited) on: its training data and splits, rebuilt
from the checkpoint's record and verified, or another site's data, named as such.

The record (:class:`~deepcovid.data.splits.DataRecord`) holds what defined the splits: the data
fingerprint, the :class:`~deepcovid.data.settings.SplitSettings`, and the val and test members.
Rebuilt with those settings, the same data gives the same splits; any difference stops with an
error that names it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

from omegaconf import DictConfig

from deepcovid.data.datamodule import XrayDataModule
from deepcovid.data.settings import InputSettings
from deepcovid.data.splits import DataRecord
from deepcovid.data.transforms import Preprocessing
from deepcovid.utils.instantiate import instantiate_with

log = logging.getLogger(__name__)


class Recorded(Protocol):
    """What a model's record (``models.record.ModelRecord``) says about its data."""

    preprocessing: Preprocessing
    data: DataRecord | None


class DataMismatchError(ValueError):
    """The data given to ``evaluate`` is not the data (or splits) the model was trained on."""


def differences(recorded: DataRecord, found: DataRecord, limit: int = 5) -> list[str]:
    """What differs between the training run's data and splits and these, in words."""
    lines = []
    if recorded.fingerprint != found.fingerprint:
        lines.append(
            f"the files differ: {found.n_images} images now, {recorded.n_images} in training "
            f"(content fingerprint {found.fingerprint[:12]} vs {recorded.fingerprint[:12]})"
        )
    for split in ("val", "test"):
        then, now = set(recorded.members.get(split, [])), set(found.members.get(split, []))
        if then != now:
            gone, new = sorted(then - now), sorted(now - then)
            lines.append(
                f"the {split} split differs: {len(new)} image(s) not in training's {split} "
                f"(e.g. {new[:limit]}), {len(gone)} missing (e.g. {gone[:limit]})"
            )
    return lines


def check_preprocessing(data: DictConfig, record: Recorded, ckpt_path: str) -> None:
    """Refuse preprocessing overrides: the checkpoint says how its input is made."""
    for key in InputSettings().preprocessing():
        given = data.get(key)
        if given is not None and given != getattr(record.preprocessing, key):
            raise ValueError(
                f"data.{key}={given}, but {ckpt_path} was trained with {key}="
                f"{getattr(record.preprocessing, key)}; leave data.{key} unset: the checkpoint "
                "carries its preprocessing"
            )


def training_data(
    data: DictConfig, record: Recorded, ckpt_path: str, split: str = "test"
) -> XrayDataModule:
    """The training data and splits, rebuilt from the record and verified."""
    recorded = record.data
    if recorded is None:
        raise DataMismatchError(
            f"{ckpt_path} records no data: evaluate it on this data with external=true"
        )
    settings = dataclasses.replace(recorded.split, tested_split=split)
    log.info("rebuilding the training run's splits: %s", settings)
    datamodule = instantiate_with(data, preprocessing=record.preprocessing, **settings.to_dict())
    datamodule.setup("test")
    found = differences(recorded, datamodule.record())
    if found:
        raise DataMismatchError(
            f"data.root={data.root} is not the data {ckpt_path} was trained on (it "
            f"was {recorded.root}):\n  " + "\n  ".join(found) + "\nTo evaluate on other data "
            "(another site, another release), pass external=true."
        )
    return datamodule


def datamodule_for(
    data: DictConfig,
    record: Recorded,
    ckpt_path: str,
    split: str = "test",
    external: bool = False,
    with_val: bool = False,
) -> XrayDataModule:
    """The data a recorded model is evaluated on (set up): its training data and splits,
    verified, or (``external``) another site's, every image or its own test split a test image
    (``with_val``: and a val split of that site)."""
    check_preprocessing(data, record, ckpt_path)
    if not external:
        return training_data(data, record, ckpt_path, split)
    datamodule = instantiate_with(
        data,
        preprocessing=record.preprocessing,
        external_splits="test_and_val" if with_val else "test",
    )
    datamodule.setup("test")
    return datamodule
