"""The scope check's weights: safetensors only, checked against the sha256 recorded in the
JSON card beside them before they are read, as the lung segmenter's
(:mod:`deepcovid.lungs.weights`).

``scope_net.safetensors`` + ``scope_net.json`` ship in this package; the JSON holds the
weights' sha256, the network's shape, working size and threshold, and the training split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from deepcovid.lungs.weights import WeightsIntegrityError, card_path
from deepcovid.scope.model import CLASSES, WORKING_SIZE, ScopeNet, ScopeShape
from deepcovid.utils.files import atomic_path, sha256_of, write_json_atomic

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_NAME = "scope_net.safetensors"
SHIPPED_WEIGHTS = PACKAGE_DIR / WEIGHTS_NAME
RETRAIN = "reinstall deepcovid or retrain with python -m deepcovid.scope.train"


@dataclass(frozen=True)
class ScopeCard:
    """What ``scope_net.json`` records next to ``scope_net.safetensors``."""

    sha256: str
    shape: ScopeShape
    working_size: int = WORKING_SIZE
    threshold: float = 0.5  # in scope when P(frontal) >= threshold
    classes: tuple[str, ...] = CLASSES
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "shape": self.shape.to_dict(),
            "working_size": self.working_size,
            "threshold": self.threshold,
            "classes": list(self.classes),
            "training": self.training,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScopeCard:
        shape = data["shape"]
        return cls(
            sha256=data["sha256"],
            shape=ScopeShape(tuple(shape["widths"]), float(shape["dropout"])),
            working_size=int(data["working_size"]),
            threshold=float(data["threshold"]),
            classes=tuple(data["classes"]),
            training=dict(data.get("training", {})),
        )


def read_card(weights: Path) -> ScopeCard:
    path = card_path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing. Scope weights are only loaded with the JSON card holding their "
            f"sha256: {RETRAIN}."
        )
    card = ScopeCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
    if card.classes != CLASSES:
        raise ValueError(f"{path}: classes {card.classes} differ from this version's {CLASSES}")
    return card


def load_network(weights: str | Path = SHIPPED_WEIGHTS) -> tuple[ScopeNet, ScopeCard]:
    """The network in eval mode with verified ``weights``, and their card."""
    weights = Path(weights)
    if weights.suffix != ".safetensors":
        raise ValueError(f"{weights}: only .safetensors weights are loaded (no pickle files)")
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such weights file; {RETRAIN}")
    card = read_card(weights)
    actual = sha256_of(weights)
    if actual != card.sha256:
        raise WeightsIntegrityError(
            f"{weights}: sha256 {actual} does not match {card.sha256} recorded in "
            f"{card_path(weights)}. The file is corrupt or was replaced; {RETRAIN}."
        )
    network = ScopeNet(card.shape)
    network.load_state_dict(load_file(weights))
    return network.eval(), card


def save_network(
    network: ScopeNet,
    weights: str | Path,
    working_size: int = WORKING_SIZE,
    threshold: float = 0.5,
    training: dict[str, Any] | None = None,
) -> ScopeCard:
    """Write ``network``'s weights (safetensors) and their card, both atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    with atomic_path(weights) as partial:
        save_file(state, str(partial))
    card = ScopeCard(
        sha256_of(weights), network.shape, working_size, threshold, CLASSES, training or {}
    )
    write_json_atomic(card.to_dict(), card_path(weights))
    return card
