"""The scope network's card: its classes checked, its shape read back."""

from pathlib import Path

import pytest
import torch

from deepcovid.scope.model import CLASSES, ScopeNet, ScopeShape
from deepcovid.scope.weights import ScopeCard, load_network, save_network


def test_a_saved_scope_net_loads_with_its_classes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = ScopeNet(ScopeShape(widths=(4, 8), dropout=0.1))
    card = save_network(net, tmp_path / "s.safetensors", working_size=32)
    assert card.classes == CLASSES and card.to_dict()["classes"] == list(CLASSES)
    loaded, read = load_network(tmp_path / "s.safetensors")
    assert read.shape == ScopeShape((4, 8), 0.1) and read.working_size == 32
    assert torch.equal(loaded.head[-1].weight, net.head[-1].weight)


def test_a_card_of_other_classes_is_refused() -> None:
    data = ScopeCard("0" * 64, ScopeShape()).to_dict()
    with pytest.raises(ValueError, match="differ from this version's"):
        ScopeCard.from_dict({**data, "classes": ["frontal", "other"]})
