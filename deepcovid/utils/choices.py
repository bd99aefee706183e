"""A key's allowed values as one Enum, built from the one tuple that lists them.

The config schemas (registered in ``conf/__init__.py``) type their choice keys with these Enums,
so Hydra stops a wrong value when it composes the config, naming the key and the choices;
:func:`checked_choice` gives Python callers the same check from the same Enum.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, StrEnum


def choices(name: str, values: Iterable[str]) -> type[StrEnum]:
    """A StrEnum whose members are ``values`` (each named as itself)."""
    return StrEnum(name, {value: value for value in values})


def checked_choice(key: str, value: object, kind: type[Enum]) -> str:
    """``value`` as a plain string when it is one of ``kind``'s members, else a ValueError
    naming ``key`` and the choices."""
    text = value.value if isinstance(value, Enum) else value
    if text not in kind.__members__:
        raise ValueError(f"{key}={text!r}; choose one of {list(kind.__members__)}")
    return str(text)
