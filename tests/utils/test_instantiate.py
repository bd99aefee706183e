"""Config groups to objects: entries without a target, null ones and switched-off factories
are left out; objects passed to a factory arrive as they are."""

from dataclasses import dataclass

from omegaconf import OmegaConf

from deepcovid.utils.instantiate import instantiate_group, instantiate_with


@dataclass(frozen=True)
class Settings:
    size: int


def switched_off() -> None:
    return None


def test_a_group_keeps_only_what_was_built() -> None:
    group = OmegaConf.create({
        "counter": {"_target_": "collections.Counter", "a": 2},
        "off": {"_target_": "tests.utils.test_instantiate.switched_off"},
        "unset": None,
        "note": {"enabled": False},
    })  # fmt: skip
    (built,) = instantiate_group(group)
    assert built == {"a": 2}
    assert instantiate_group(None) == [] and instantiate_group(OmegaConf.create({})) == []


def test_objects_are_passed_as_they_are() -> None:
    config = OmegaConf.create({"_target_": "builtins.dict", "depth": 3})
    settings = Settings(4)
    made = instantiate_with(config, settings=settings)
    assert made == {"depth": 3, "settings": settings} and made["settings"] is settings
