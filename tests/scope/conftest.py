"""Real frontal and non-frontal images the shipped scope check did not train on, and DICOM
files whose header says CT or lateral."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from deepcovid.scope.train import drop_repeats, read_examples
from deepcovid.scope.weights import SHIPPED_WEIGHTS
from deepcovid.utils.config import compose_config
from deepcovid.utils.shipped import card_path
from tests.conftest import SHARED_DATA
from tests.dicom.conftest import write_cr

CT_PLANE = {  # the Image Plane module: type 1 in a CT image, read by highdicom's SR
    "PixelSpacing": [0.7, 0.7],
    "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
    "ImagePositionPatient": [0, 0, 0],
    "SliceThickness": 1.0,
}


def heldout_patients() -> set[str]:
    """The patients the shipped weights were not trained on (recorded in their card)."""
    card = json.loads(card_path(SHIPPED_WEIGHTS).read_text(encoding="utf-8"))
    return set(card["training"]["heldout_patients"])


def heldout_images() -> pd.DataFrame:
    """path, kind (frontal | lateral | ct) of every real held-out image, read as
    ``deepcovid.scope.train`` read them (a repeated file once)."""
    cfg = compose_config("scope_train", [f"data_root={SHARED_DATA}"])
    held = heldout_patients()
    examples = [e for e in drop_repeats(read_examples(cfg)) if e.group in held]
    return pd.DataFrame({"path": [e.path for e in examples], "kind": [e.kind for e in examples]})


@pytest.fixture
def header_dicoms(tmp_path: Path) -> dict[str, Path]:
    """A CT DICOM (Modality CT, with the plane attributes every CT image has), a lateral CR
    (ViewPosition LL), an abdomen CR and a chest PA CR, all with the same generated pixels."""
    folder = tmp_path / "dicom"
    folder.mkdir()
    return {
        "ct": write_cr(folder / "ct.dcm", Modality="CT", **CT_PLANE),
        "lateral": write_cr(folder / "lateral.dcm", ViewPosition="LL"),
        "abdomen": write_cr(folder / "abdomen.dcm", BodyPartExamined="ABDOMEN"),
        "chest_pa": write_cr(folder / "chest_pa.dcm"),
    }
