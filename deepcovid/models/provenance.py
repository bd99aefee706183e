"""Where a model's starting weights came from: the file they were read from, by content (the
corpora they were trained on, and their overlap with evaluated data, are
:mod:`deepcovid.results.pretraining`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepcovid.utils.files import sha256_of


@dataclass(frozen=True)
class WeightsFile:
    """The file the starting weights were read from: where it was and its sha256."""

    path: str
    sha256: str

    @classmethod
    def of(cls, path: str | Path) -> WeightsFile:
        return cls(str(Path(path).resolve()), sha256_of(path))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: dict[str, Any] | None) -> WeightsFile | None:
        return None if stored is None else cls(**stored)
