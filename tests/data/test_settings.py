"""The data settings as types: the config schema stops a wrong value at composition, the flat
keys map once onto the groups, and a record's split settings (nested or, before, flat) load."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException

from deepcovid.data.datamodule import XrayDataModule
from deepcovid.data.settings import Balance, DataSettings, SplitSettings
from deepcovid.data.splits import DataRecord
from deepcovid.utils.config import compose_config

CHOICES = {
    "on_bad_file": "['error', 'skip']",
    "out_of_scope": "['exclude', 'keep', 'error']",
    "on_leak": "['error', 'warn']",
    "balance": "['oversample', 'weighted_loss', 'none']",
    "external_splits": "['test', 'test_and_val']",
    "tested_split": "['train', 'val', 'test']",
    "lung_crop_masks": "['segmenter', 'any']",
    "outside_lungs": "['keep', 'blank']",
}


def composition_error(*overrides: str) -> str:
    """The message (with its cause) of composing the train config with ``overrides``."""
    with pytest.raises(ConfigCompositionException) as error:
        compose_config("train", list(overrides))
    return f"{error.value}\n{error.value.__cause__}"


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_a_wrong_choice_stops_at_composition_naming_key_and_choices(key: str) -> None:
    message = composition_error(f"data.{key}=skp")
    assert f"data.{key}" in message and "Invalid value 'skp'" in message
    assert CHOICES[key].replace("'", "") in message  # OmegaConf lists them unquoted


def test_a_wrong_type_or_unknown_key_stops_at_composition() -> None:
    assert "data.val_fraction" in composition_error("data.val_fraction=a_tenth")
    assert "Key 'balanc' not in 'DataConfig'" in composition_error("data.balanc=none")


def test_composed_choices_reach_the_datamodule_as_their_types() -> None:
    cfg = compose_config("train", ["data.balance=weighted_loss", "data.root=/nowhere"])
    assert cfg.data.balance is Balance.weighted_loss
    settings = DataSettings.from_flat(
        **{k: v for k, v in cfg.data.items() if k not in ("_target_", "root", "manifest")}
    )
    assert settings.loader.balance is Balance.weighted_loss and settings.split.seed == cfg.seed


def test_python_callers_get_the_same_checks(tmp_path) -> None:
    with pytest.raises(
        ValueError, match=r"data.on_leak='maybe'; choose one of \['error', 'warn'\]"
    ):
        XrayDataModule(str(tmp_path), on_leak="maybe")
    with pytest.raises(TypeError, match=r"unknown data setting\(s\) \['val_fraktion'\]"):
        XrayDataModule(str(tmp_path), val_fraktion=0.2)
    with pytest.raises(TypeError, match="not both"):
        XrayDataModule(str(tmp_path), settings=DataSettings(), seed=1)


def test_flat_keys_land_in_their_groups(tmp_path) -> None:
    dm = XrayDataModule(str(tmp_path), seed=7, num_folds=5, fold=2, num_workers=0, cache=True)
    assert dm.settings.split == SplitSettings(seed=7, num_folds=5, fold=2)
    assert dm.settings.loader.num_workers == 0 and not dm.settings.loader.persistent
    assert dm.settings.cache.cache and dm.tested_split == "test"


def record(**split: object) -> dict[str, object]:
    common = {"root": "/data", "manifest": None, "fingerprint": "0" * 64, "n_images": 10}
    return common | split | {"split_origin": {"val": "given"}, "balance": "oversample"}


def test_a_record_round_trips_with_plain_values() -> None:
    split = SplitSettings(seed=3, val_fraction=0.25, num_folds=4, fold=1, holdout_source="a")
    stored = DataRecord.from_dict(record(split=split.to_dict())).to_dict()
    assert stored["split"] == split.to_dict() and stored["split"]["tested_split"] == "test"
    assert type(stored["split"]["tested_split"]) is str  # torch's weights_only loader reads it
    assert DataRecord.from_dict(stored).split == split


def test_an_older_flat_record_still_loads() -> None:
    flat = {"seed": 3, "val_fraction": 0.25, "test_fraction": 0.2, "num_folds": 4, "fold": 1}
    loaded = DataRecord.from_dict(record(**flat))  # before holdout_source, too
    assert loaded.split == SplitSettings(**flat)
    assert loaded.split.run_identity() == {
        "seed": 3, "fold": 1, "num_folds": 4, "holdout_source": None,
    }  # fmt: skip
