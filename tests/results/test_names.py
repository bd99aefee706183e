"""Threshold rules and interval methods named in words."""

import pytest

from deepcovid.metrics.intervals import ALL_INTERVAL_METHODS
from deepcovid.metrics.operating_points import OperatingPoint
from deepcovid.results.names import INTERVAL_NAMES, rule_name


@pytest.mark.parametrize(
    ("point", "words"),
    [
        (OperatingPoint("fixed", 0.25), "fixed 0.25"),
        (OperatingPoint("youden", 0.4), "max. Youden's J on val"),
        (OperatingPoint("target_sensitivity", 0.3, target=0.95), "val sensitivity ≥ 95 %"),
        (OperatingPoint("target_specificity", 0.7, target=0.9), "val specificity ≥ 90 %"),
    ],
)
def test_each_rule_is_named_with_its_target(point: OperatingPoint, words: str) -> None:
    assert rule_name(point) == words


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(KeyError):
        rule_name(OperatingPoint("best_f1", 0.5))


def test_every_interval_method_of_the_config_has_a_name() -> None:
    assert set(INTERVAL_NAMES) == set(ALL_INTERVAL_METHODS)
