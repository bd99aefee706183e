"""Weights that ship beside a JSON card: saved atomically with their sha256, loaded only when
the card is there and the sha256 matches, each refusal naming the file and the fix."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from deepcovid.utils.shipped import ShippedWeights, WeightsCard, WeightsIntegrityError, card_path


@dataclass(frozen=True)
class Shape:
    width: int

    def to_dict(self) -> dict:
        return {"width": self.width}


class Net(nn.Linear):
    def __init__(self, shape: Shape) -> None:
        super().__init__(2, shape.width)
        self.shape = shape


@dataclass(frozen=True)
class Card(WeightsCard):
    @staticmethod
    def read_shape(data: dict) -> Shape:
        return Shape(int(data["width"]))


WEIGHTS = ShippedWeights(Net, Card, Path("nowhere.safetensors"), "retrain it")


def saved(tmp_path: Path) -> tuple[Path, Net]:
    torch.manual_seed(0)
    net, weights = Net(Shape(3)), tmp_path / "net.safetensors"
    WEIGHTS.save_network(net, weights, working_size=32, threshold=0.7, training={"seed": 1})
    return weights, net


def test_saved_weights_load_with_their_card(tmp_path: Path) -> None:
    weights, net = saved(tmp_path)
    loaded, card = WEIGHTS.load_network(weights)
    assert not loaded.training and torch.equal(loaded.weight, net.weight)
    assert (card.shape, card.working_size, card.threshold, card.training) == (
        Shape(3), 32, 0.7, {"seed": 1}
    )  # fmt: skip
    assert card_path(weights) == tmp_path / "net.json"


def test_changed_weights_and_missing_or_foreign_cards_are_refused(tmp_path: Path) -> None:
    weights, _ = saved(tmp_path)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match=f"{weights}: sha256 .* retrain it"):
        WEIGHTS.load_network(weights)
    card_path(weights).write_text(json.dumps({"sha256": "x"}))
    with pytest.raises(ValueError, match="not a card this version reads .*retrain it"):
        WEIGHTS.load_network(weights)
    card_path(weights).unlink()
    with pytest.raises(FileNotFoundError, match="net.json: missing"):
        WEIGHTS.load_network(weights)
    with pytest.raises(ValueError, match="only .safetensors weights are loaded"):
        WEIGHTS.load_network(tmp_path / "net.pt")
    with pytest.raises(FileNotFoundError, match="no such weights file; retrain it"):
        WEIGHTS.load_network()
