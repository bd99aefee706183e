"""The segmenter's weights: safetensors only (no pickle), checked against the sha256 recorded
in a JSON file beside them before they are read (:mod:`deepcovid.utils.shipped`).

``lung_unet.safetensors`` + ``lung_unet.json`` ship in this package. The JSON holds the
weights' sha256, the network's shape and working size, and the split the held-out evaluation
used, so a checkout can recompute it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepcovid.lungs.model import WORKING_SIZE, LungUNet, UNetShape
from deepcovid.utils.shipped import ShippedWeights, WeightsCard

PACKAGE_DIR = Path(__file__).resolve().parent
WEIGHTS_NAME = "lung_unet.safetensors"
SHIPPED_WEIGHTS = PACKAGE_DIR / WEIGHTS_NAME


@dataclass(frozen=True)
class LungCard(WeightsCard):
    """What ``lung_unet.json`` records next to ``lung_unet.safetensors``; the threshold is on
    the lung probability."""

    shape: UNetShape
    working_size: int = WORKING_SIZE

    @staticmethod
    def read_shape(data: dict[str, Any]) -> UNetShape:
        return UNetShape(**data)


LUNG_UNET = ShippedWeights(
    LungUNet,
    LungCard,
    SHIPPED_WEIGHTS,
    "reinstall deepcovid or retrain with python -m deepcovid.lungs.train",
)
read_card = LUNG_UNET.read_card
load_network = LUNG_UNET.load_network
save_network = LUNG_UNET.save_network
