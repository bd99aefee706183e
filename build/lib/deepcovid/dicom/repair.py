"""Repair the invalid values of a source DICOM header before its attributes are copied.

Real exports break their own value representations (Patient's Age ``62`` where AS requires
``062Y``). A result that copies them inherits the error, and a PACS may reject it. Every
top-level attribute with a text VR is checked with pydicom's VR validators; a value is
repaired where exactly one reading is possible, otherwise the attribute is emptied (a
zero-length value, DICOM's "unknown", valid for Type 2 and Type 3 attributes). Each change is
returned as a :class:`Repair`. An invalid UID cannot be repaired or emptied (results must
reference the study, series and instance): it raises :class:`InvalidSourceError`.

Sequences are not descended into: the results copy no sequence from the source.
"""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import validate_value

TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UR"}
AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
DOTTED_DATE = re.compile(r"^(\d{4})[-./](\d{2})[-./](\d{2})$")
COLON_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?$")


class InvalidSourceError(ValueError):
    """A source DICOM file whose header cannot be used for results; the message says why."""


@dataclass(frozen=True)
class Repair:
    """One attribute changed in the copy of the source header: ``new`` is None when dropped."""

    tag: str
    keyword: str
    vr: str
    old: str
    new: str | None
    reason: str

    @property
    def action(self) -> str:
        return "dropped" if self.new is None else "repaired"

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self) | {"action": self.action}

    def __str__(self) -> str:
        change = "dropped (emptied)" if self.new is None else f"-> {self.new!r}"
        return f"{self.tag} {self.keyword} ({self.vr}) {self.old!r} {change}: {self.reason}"


def repaired_age(value: str) -> str | None:
    """``62`` / ``62Y`` / ``62 y`` -> ``062Y``: a number without unit is in years, as the
    attribute's name and every modality that writes it this way mean."""
    match = AGE.match(value)
    if not match:
        return None
    number, unit = match.groups()
    return f"{int(number):03d}{(unit or 'Y').upper()}"


def repaired_date(value: str) -> str | None:
    """``2020-01-31`` / ``2020.01.31`` (ACR-NEMA) -> ``20200131``, when it is a calendar date."""
    match = DOTTED_DATE.match(value.strip())
    if not match:
        return None
    try:
        datetime.date(*(int(part) for part in match.groups()))
    except ValueError:
        return None
    return "".join(match.groups())


def repaired_time(value: str) -> str | None:
    """``12:30:05.25`` -> ``123005.25``."""
    match = COLON_TIME.match(value.strip())
    return None if not match else "".join(part for part in match.groups() if part)


def repaired_code_string(value: str) -> str | None:
    """``m`` -> ``M``: code strings are upper case."""
    return value.strip().upper()


REPAIRS: dict[str, tuple[Callable[[str], str | None], str]] = {
    "AS": (repaired_age, "AS needs 3 digits and a unit (D, W, M, Y); a bare number is years"),
    "DA": (repaired_date, "DA is YYYYMMDD without separators"),
    "TM": (repaired_time, "TM is HHMMSS.FFFFFF without separators"),
    "CS": (repaired_code_string, "CS allows upper case letters, digits, space and _ only"),
}


def is_valid(vr: str, value: str) -> bool:
    try:
        validate_value(vr, value, config.RAISE)
    except ValueError:
        return False
    return True


def values_of(element: DataElement) -> list[str]:
    """The element's values as the strings that are written to the file."""
    if element.value is None:
        return []
    values = element.value if isinstance(element.value, MultiValue) else [element.value]
    return [str(value) for value in values]


def repair_element(element: DataElement) -> tuple[list[str] | None, str] | None:
    """None if every value is valid; else (the repaired values, or None to drop, and why)."""
    values = values_of(element)
    if all(is_valid(element.VR, value) for value in values):
        return None
    repair, rule = REPAIRS.get(element.VR, (None, ""))
    fixed = []
    for value in values:
        new = value if is_valid(element.VR, value) else repair(value) if repair else None
        if new is None or not is_valid(element.VR, new):
            reason = rule or f"not a valid {element.VR} value"
            return None, f"{reason}; no unambiguous repair"
        fixed.append(new)
    return fixed, rule


def repair_header(dataset: Dataset, source: str) -> tuple[Dataset, list[Repair]]:
    """A copy of ``dataset`` with its invalid top-level values repaired or emptied, and the
    list of changes. ``source`` (the file name) is used in error messages."""
    dataset = copy.deepcopy(dataset)
    repairs = []
    for element in dataset:
        if element.VR == "UI":
            for value in values_of(element):
                if not is_valid("UI", value):
                    raise InvalidSourceError(
                        f"{source}: {element.keyword} {value!r} is not a valid UID, so results "
                        "cannot reference it. Fix the file's UIDs (or re-export it) and rerun."
                    )
            continue
        if element.VR not in TEXT_VRS:
            continue
        outcome = repair_element(element)
        if outcome is None:
            continue
        fixed, reason = outcome
        old = "\\".join(values_of(element))
        new = None if fixed is None else "\\".join(fixed)
        element.value = "" if fixed is None else fixed[0] if len(fixed) == 1 else fixed
        repairs.append(Repair(str(element.tag), element.keyword, element.VR, old, new, reason))
    return dataset, repairs
