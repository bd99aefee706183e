"""Shipped-weights integrity: safetensors only, sha256 checked before loading."""

from __future__ import annotations

import ast
import json
import re
import shutil
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch

from deepcovid.lungs.model import LungUNet
from deepcovid.lungs.weights import PACKAGE_DIR, SHIPPED_WEIGHTS, load_network, read_card
from deepcovid.utils.files import sha256_of
from deepcovid.utils.shipped import WeightsIntegrityError, card_path
from tests.lungs.conftest import TINY_SHAPE, TINY_SIZE


def test_round_trip_restores_the_network(tiny_weights: Path) -> None:
    network, card = load_network(tiny_weights)
    assert isinstance(network, LungUNet) and not network.training
    assert card.shape == TINY_SHAPE and card.working_size == TINY_SIZE
    assert card.sha256 == sha256_of(tiny_weights)
    again, _ = load_network(tiny_weights)
    x = torch.randn(1, 1, TINY_SIZE, TINY_SIZE)
    with torch.inference_mode():
        torch.testing.assert_close(network(x), again(x))


def test_tampered_weights_are_refused(tiny_weights: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.safetensors"
    data = bytearray(tiny_weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte in the last tensor
    tampered.write_bytes(bytes(data))
    shutil.copy(card_path(tiny_weights), card_path(tampered))
    with pytest.raises(WeightsIntegrityError, match=r"tampered\.safetensors: sha256 .* does not"):
        load_network(tampered)


def test_missing_card_and_pickles_are_refused(tiny_weights: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone.safetensors"
    shutil.copy(tiny_weights, lone)
    with pytest.raises(FileNotFoundError, match=r"lone\.json: missing"):
        load_network(lone)
    with pytest.raises(ValueError, match="only .safetensors"):
        load_network(tmp_path / "model.pt")


def test_shipped_weights_match_their_card() -> None:
    card = read_card(SHIPPED_WEIGHTS)
    assert sha256_of(SHIPPED_WEIGHTS) == card.sha256
    assert SHIPPED_WEIGHTS.stat().st_size < 10e6
    assert json.loads(card_path(SHIPPED_WEIGHTS).read_text())["training"]["heldout"]
    network, _ = load_network()
    assert isinstance(network, LungUNet)


def test_shipped_files_are_package_data_and_the_card_links_exist() -> None:
    pyproject = (PACKAGE_DIR.parents[1] / "pyproject.toml").read_text()  # no tomllib on 3.10
    patterns = ast.literal_eval(re.search(r'^"deepcovid.lungs" = (\[.*\])$', pyproject, re.M)[1])
    card = (PACKAGE_DIR / "MODEL_CARD.md").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert len(figures) == 2
    shipped = [SHIPPED_WEIGHTS.name, card_path(SHIPPED_WEIGHTS).name, "MODEL_CARD.md", *figures]
    for name in shipped:
        assert (PACKAGE_DIR / name).is_file(), name
        assert any(fnmatch(name, pattern) for pattern in patterns), name
    assert sum((PACKAGE_DIR / name).stat().st_size for name in figures) < 2e6
    assert read_card(SHIPPED_WEIGHTS).sha256 in card
