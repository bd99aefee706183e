"""The segmenter's weights: safetensors only (no pickle), checked against the sha256 recorded
in a JSON file beside them before they are read.

``lung_unet.safetensors`` + ``lung_unet.json`` ship in this package. The JSON holds the
weights' sha256, the network's shape and working size, and the split the held-out evaluation
used, so a checkout can recompute it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from deepcovid.lungs.model import WORKING_SIZE, LungUNet, UNetShape
from deepcovid.utils.files import atomic_path, sha256_of, write_json_atomic

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_NAME = "lung_unet.safetensors"
SHIPPED_WEIGHTS = PACKAGE_DIR / WEIGHTS_NAME


class WeightsIntegrityError(RuntimeError):
    """Weights whose sha256 differs from the one recorded beside them."""


@dataclass(frozen=True)
class WeightsCard:
    """What ``<weights>.json`` records next to ``<weights>.safetensors``."""

    sha256: str
    shape: UNetShape
    working_size: int = WORKING_SIZE
    threshold: float = 0.5  # on the lung probability
    training: dict[str, Any] = field(default_factory=dict)  # split, seed, epochs… as trained

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "shape": self.shape.to_dict(),
            "working_size": self.working_size,
            "threshold": self.threshold,
            "training": self.training,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeightsCard:
        return cls(
            sha256=data["sha256"],
            shape=UNetShape(**data["shape"]),
            working_size=int(data["working_size"]),
            threshold=float(data["threshold"]),
            training=dict(data.get("training", {})),
        )


def card_path(weights: str | Path) -> Path:
    """``x.safetensors`` → ``x.json``."""
    return Path(weights).with_suffix(".json")


def read_card(weights: str | Path) -> WeightsCard:
    """The card beside ``weights``; an error naming it when it is missing."""
    path = card_path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing. Weights are only loaded with the JSON card that "
            f"deepcovid.lungs.train writes beside them (it holds their sha256)."
        )
    return WeightsCard.from_dict(json.loads(path.read_text(encoding="utf-8")))


def verify(weights: str | Path, card: WeightsCard) -> None:
    """Raise :class:`WeightsIntegrityError` naming ``weights`` when its sha256 is not the
    card's."""
    actual = sha256_of(weights)
    if actual != card.sha256:
        raise WeightsIntegrityError(
            f"{weights}: sha256 {actual} does not match {card.sha256} recorded in "
            f"{card_path(weights)}. The file is corrupt or was replaced; reinstall deepcovid "
            "or retrain with python -m deepcovid.lungs.train."
        )


def load_network(weights: str | Path = SHIPPED_WEIGHTS) -> tuple[LungUNet, WeightsCard]:
    """The network in eval mode with verified ``weights``, and their card."""
    weights = Path(weights)
    if weights.suffix != ".safetensors":
        raise ValueError(f"{weights}: only .safetensors weights are loaded (no pickle files)")
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no such weights file")
    card = read_card(weights)
    verify(weights, card)
    network = LungUNet(card.shape)
    network.load_state_dict(load_file(weights))
    return network.eval(), card


def save_network(
    network: LungUNet,
    weights: str | Path,
    working_size: int = WORKING_SIZE,
    threshold: float = 0.5,
    training: dict[str, Any] | None = None,
) -> WeightsCard:
    """Write ``network``'s weights (safetensors) and their card, both atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    with atomic_path(weights) as partial:
        save_file(state, str(partial))
    card = WeightsCard(sha256_of(weights), network.shape, working_size, threshold, training or {})
    write_json_atomic(card.to_dict(), card_path(weights))
    return card
