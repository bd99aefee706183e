"""Choice keys typed by one Enum each: a wrong value stops when Hydra composes the config,
naming the key and the choices (the schemas in conf/__init__.py); Python callers get the same
check from the same Enum."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from deepcovid.evaluate import OPERATING_POINTS, SPLITS
from deepcovid.explain.occlusion import METHODS
from deepcovid.explain.scoring import SCORES
from deepcovid.metrics.intervals import ALL_INTERVAL_METHODS, IntervalMethod
from deepcovid.models.backbones import FINETUNE_MODES
from deepcovid.models.exported import WRITERS
from deepcovid.predict import OUT_OF_SCOPE, PREDICT_POINTS
from deepcovid.results.failures import FAILURE_POINTS
from deepcovid.utils.choices import checked_choice, choices
from deepcovid.utils.config import compose_config

# (config, key, its one tuple of choices, the overrides that bring the key in)
CHOICE_KEYS = [
    ("train", "metrics.interval", ALL_INTERVAL_METHODS, ""),
    ("eval", "metrics.interval", ALL_INTERVAL_METHODS, ""),
    ("train", "model.finetune", FINETUNE_MODES, ""),
    ("eval", "split", SPLITS, ""),
    ("eval", "operating_points", OPERATING_POINTS, ""),
    ("predict", "out_of_scope", OUT_OF_SCOPE, ""),
    ("predict", "operating_point", PREDICT_POINTS, ""),
    ("export", "format", tuple(WRITERS), ""),
    ("predict", "explainer.method", METHODS, "explainer=occlusion"),
    ("predict", "explainer.score", SCORES, "explainer=occlusion"),
    ("eval", "explainer.score", SCORES, "explainer=gradcam"),
    ("audit", "audit.explainers.occlusion.method", METHODS, ""),
    ("eval", "failures.operating_point", FAILURE_POINTS, ""),
]


def overrides(group: str, *more: str) -> list[str]:
    return [group, *more] if group else list(more)


@pytest.mark.parametrize(("config", "key", "allowed", "group"), CHOICE_KEYS)
def test_a_wrong_choice_stops_at_composition_naming_key_and_choices(
    config: str, key: str, allowed: tuple[str, ...], group: str
) -> None:
    with pytest.raises(ConfigCompositionException) as error:
        compose_config(config, overrides(group, f"{key}=wrng"))
    message = f"{error.value}\n{error.value.__cause__}"
    assert f"full_key: {key}" in message and "Invalid value 'wrng'" in message
    assert f"expected one of [{', '.join(allowed)}]" in message


@pytest.mark.parametrize(("config", "key", "allowed", "group"), CHOICE_KEYS)
def test_each_choice_composes(config: str, key: str, allowed: tuple[str, ...], group: str) -> None:
    for value in allowed:
        composed = compose_config(config, overrides(group, f"{key}={value}"))
        assert OmegaConf.select(composed, key) == value


def test_python_callers_get_the_same_check() -> None:
    assert checked_choice("metrics.interval", IntervalMethod.wilson, IntervalMethod) == "wilson"
    assert type(checked_choice("k", "auto", IntervalMethod)) is str
    with pytest.raises(ValueError, match=r"^k='x'; choose one of \['a', 'b'\]$"):
        checked_choice("k", "x", choices("AB", ("a", "b")))
