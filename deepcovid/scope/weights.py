"""The scope check's weights: safetensors only, checked against the sha256 recorded in the
JSON card beside them before they are read (:mod:`deepcovid.utils.shipped`).

``scope_net.safetensors`` + ``scope_net.json`` ship in this package; the JSON holds the
weights' sha256, the network's shape, working size and threshold, the classes and the
training split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepcovid.scope.model import CLASSES, WORKING_SIZE, ScopeNet, ScopeShape
from deepcovid.utils.shipped import ShippedWeights, WeightsCard

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_NAME = "scope_net.safetensors"
SHIPPED_WEIGHTS = PACKAGE_DIR / WEIGHTS_NAME


@dataclass(frozen=True)
class ScopeCard(WeightsCard):
    """What ``scope_net.json`` records next to ``scope_net.safetensors``; in scope when
    P(frontal) >= threshold."""

    shape: ScopeShape
    working_size: int = WORKING_SIZE
    classes: tuple[str, ...] = CLASSES

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScopeCard:
        classes = tuple(data["classes"])
        if classes != CLASSES:
            raise ValueError(f"classes {classes} differ from this version's {CLASSES}")
        return cls(**cls.common_fields(data), classes=classes)

    @staticmethod
    def read_shape(data: dict[str, Any]) -> ScopeShape:
        return ScopeShape(tuple(data["widths"]), float(data["dropout"]))


SCOPE_NET = ShippedWeights(
    ScopeNet,
    ScopeCard,
    SHIPPED_WEIGHTS,
    "reinstall deepcovid or retrain with python -m deepcovid.scope.train",
)
read_card = SCOPE_NET.read_card
load_network = SCOPE_NET.load_network
save_network = SCOPE_NET.save_network
