"""Typed results to plain JSON values and back."""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from deepcovid.utils.serialize import from_jsonable, to_jsonable


@dataclass(frozen=True)
class Inner:
    value: float
    interval: tuple[float | None, float | None] = (None, None)


@dataclass(frozen=True)
class Outer:
    name: str
    inners: list[Inner]
    by_key: dict[str, Inner]
    curve: np.ndarray
    optional: Inner | None = None
    sizes: tuple[int, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)


def test_a_nested_result_survives_json() -> None:
    outer = Outer(
        "run", [Inner(0.5, (0.4, 0.6))], {"a": Inner(np.float64(0.25))},
        np.array([0.0, 0.5, 1.0]), optional=Inner(1.0), sizes=(1, 2, 3), notes={"x": "why"},
    )  # fmt: skip
    plain = to_jsonable(outer)
    assert isinstance(plain["by_key"]["a"]["value"], float) and plain["sizes"] == [1, 2, 3]
    back = from_jsonable(Outer, json.loads(json.dumps(plain)))
    assert back.inners == [Inner(0.5, (0.4, 0.6))] and back.by_key == {"a": Inner(0.25)}
    assert back.optional == Inner(1.0) and back.sizes == (1, 2, 3) and back.notes == {"x": "why"}
    np.testing.assert_array_equal(back.curve, outer.curve)


def test_non_finite_numbers_become_null_and_arrays_read_them_as_nan() -> None:
    plain = to_jsonable({"a": math.nan, "b": [np.float32(np.inf), -math.inf, 1.5]})
    assert plain == {"a": None, "b": [None, None, 1.5]}
    json.dumps(plain, allow_nan=False)  # strict JSON
    curve = from_jsonable(np.ndarray, [0.5, None])
    assert curve[0] == 0.5 and math.isnan(curve[1])
    assert from_jsonable(Inner | None, None) is None


def test_keys_a_dataclass_does_not_have_are_ignored() -> None:
    """Files written by a later version with a field this one lacks still read."""
    assert from_jsonable(Inner, {"value": 2, "added_later": 1}) == Inner(2.0)
