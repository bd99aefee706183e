"""A recorded model's data: what differs from its training data said in words, and
preprocessing overrides refused (the checkpoint carries its own)."""

from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from deepcovid.data.recorded import check_preprocessing, datamodule_for, differences
from deepcovid.data.settings import SplitSettings
from deepcovid.data.splits import DataRecord
from deepcovid.data.transforms import Preprocessing


def record(fingerprint: str = "a" * 64, n: int = 10, test: tuple[str, ...] = ("t1", "t2")):
    return DataRecord("/data", None, fingerprint, n, SplitSettings(), {"train": "carved"},
                      members={"val": ["v1"], "test": list(test)})  # fmt: skip


def test_the_same_data_has_no_differences_and_other_data_names_them() -> None:
    assert differences(record(), record()) == []
    found = differences(record(), record("b" * 64, 12, ("t2", "t3", "t4")), limit=1)
    assert found[0] == (
        f"the files differ: 12 images now, 10 in training (content fingerprint {'b' * 12} vs "
        f"{'a' * 12})"
    )
    assert found[1] == (
        "the test split differs: 2 image(s) not in training's test (e.g. ['t3']), 1 missing "
        "(e.g. ['t1'])"
    )
    assert len(found) == 2  # val is the same


def test_preprocessing_overrides_are_refused_naming_the_checkpoint() -> None:
    model = SimpleNamespace(preprocessing=Preprocessing(image_size=64), data=None)
    check_preprocessing(OmegaConf.create({"image_size": 64, "crop_ratio": None}), model, "m.ckpt")
    with pytest.raises(ValueError, match="data.image_size=32, but m.ckpt was trained with"):
        check_preprocessing(OmegaConf.create({"image_size": 32}), model, "m.ckpt")


def test_a_model_without_a_data_record_is_only_evaluated_as_external() -> None:
    model = SimpleNamespace(preprocessing=Preprocessing(), data=None)
    with pytest.raises(ValueError, match="m.ckpt records no data: .*external=true"):
        datamodule_for(OmegaConf.create({}), model, "m.ckpt")
