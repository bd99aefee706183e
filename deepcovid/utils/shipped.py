"""Shipped network weights: safetensors only (no pickle), checked against the sha256 recorded
in the JSON card beside them (``x.safetensors`` → ``x.json``) before they are read.

Each network's module (:mod:`deepcovid.lungs.weights`, :mod:`deepcovid.scope.weights`) declares
its card (a :class:`WeightsCard` subclass) and a :class:`ShippedWeights`: the network class,
the shipped file and the command that makes new weights, named in every error.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from safetensors.torch import load_file, save_file
from torch import nn

from deepcovid.utils.files import atomic_path, sha256_of, write_json_atomic

CardT = TypeVar("CardT", bound="WeightsCard")
NetT = TypeVar("NetT", bound=nn.Module)


class WeightsIntegrityError(RuntimeError):
    """Weights whose sha256 differs from the one recorded beside them."""


def card_path(weights: str | Path) -> Path:
    """``x.safetensors`` → ``x.json``."""
    return Path(weights).with_suffix(".json")


@dataclass(frozen=True)
class WeightsCard(ABC):
    """What ``x.json`` records: the weights' sha256, the network's shape (an object with
    ``to_dict``, read back by :meth:`read_shape`), its working size and threshold, and how it
    was trained (split, seed, epochs…)."""

    sha256: str
    shape: Any
    working_size: int
    threshold: float = 0.5
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "shape": self.shape.to_dict(),
            "working_size": self.working_size,
            "threshold": self.threshold,
            "training": self.training,
        }

    @classmethod
    def from_dict(cls: type[CardT], data: dict[str, Any]) -> CardT:
        return cls(**cls.common_fields(data))

    @classmethod
    def common_fields(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The fields every card has, read from its JSON."""
        return {
            "sha256": data["sha256"],
            "shape": cls.read_shape(data["shape"]),
            "working_size": int(data["working_size"]),
            "threshold": float(data["threshold"]),
            "training": dict(data.get("training", {})),
        }

    @staticmethod
    @abstractmethod
    def read_shape(data: dict[str, Any]) -> Any:
        """The network's shape from ``to_dict``'s output; each card defines it."""


@dataclass(frozen=True)
class ShippedWeights(Generic[NetT, CardT]):
    """A network whose weights ship beside a card: ``build`` makes it from the card's shape,
    ``shipped`` is the file loaded by default, ``fix`` says how to get good weights."""

    build: Callable[[Any], NetT]
    card: type[CardT]
    shipped: Path
    fix: str

    def read_card(self, weights: str | Path) -> CardT:
        """The card beside ``weights``; an error naming it and the fix when it is missing or
        unreadable."""
        path = card_path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: missing. Weights are only loaded with the JSON card beside them that "
                f"holds their sha256; {self.fix}."
            )
        try:
            return self.card.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{path}: not a card this version reads ({error}); {self.fix}."
            ) from error

    def verify(self, weights: str | Path, card: CardT) -> None:
        """Raise :class:`WeightsIntegrityError` naming ``weights`` when its sha256 is not the
        card's."""
        actual = sha256_of(weights)
        if actual != card.sha256:
            raise WeightsIntegrityError(
                f"{weights}: sha256 {actual} does not match {card.sha256} recorded in "
                f"{card_path(weights)}. The file is corrupt or was replaced; {self.fix}."
            )

    def load_network(self, weights: str | Path | None = None) -> tuple[NetT, CardT]:
        """The network in eval mode with verified ``weights`` (the shipped ones by default),
        and their card."""
        weights = Path(weights) if weights is not None else self.shipped
        if weights.suffix != ".safetensors":
            raise ValueError(f"{weights}: only .safetensors weights are loaded (no pickle files)")
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: no such weights file; {self.fix}")
        card = self.read_card(weights)
        self.verify(weights, card)
        network = self.build(card.shape)
        network.load_state_dict(load_file(weights))
        return network.eval(), card

    def save_network(
        self,
        network: NetT,
        weights: str | Path,
        working_size: int,
        threshold: float = 0.5,
        training: dict[str, Any] | None = None,
    ) -> CardT:
        """Write ``network``'s weights (safetensors) and their card, both atomically."""
        state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
        with atomic_path(weights) as partial:
            save_file(state, str(partial))
        card = self.card(
            sha256=sha256_of(weights),
            shape=network.shape,
            working_size=working_size,
            threshold=threshold,
            training=training or {},
        )
        write_json_atomic(card.to_dict(), card_path(weights))
        return card
