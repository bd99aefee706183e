"""Typed results to JSON and back: dataclasses serialise to plain values at the edge only.

:func:`to_jsonable` turns dataclasses, tuples, numpy arrays and scalars into plain values and
non-finite floats into None; :func:`from_jsonable` rebuilds a dataclass from such values by its
type hints (nested dataclasses, lists, tuples, dicts, optionals, numpy arrays).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def to_jsonable(value: Any) -> Any:
    """``value`` with dataclasses, tuples and numpy values made plain, NaN and ±inf → None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def from_jsonable(kind: Any, value: Any) -> Any:
    """Rebuild a value of type ``kind`` (a dataclass, or a typing construct) from JSON."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        return from_jsonable(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        fields = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: from_jsonable(hints[k], v) for k, v in value.items() if k in fields})
    if origin in (list, typing.List):  # noqa: UP006 - typing.List in older hints
        (item,) = typing.get_args(kind) or (Any,)
        return [from_jsonable(item, v) for v in value]
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(args[0], v) for v in value)
        return tuple(from_jsonable(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        _, item = typing.get_args(kind) or (str, Any)
        return {k: from_jsonable(item, v) for k, v in value.items()}
    if kind is np.ndarray:
        return np.array([math.nan if v is None else v for v in value])
    if kind is float:
        return float(value)
    return value
