"""Real frontal and non-frontal images the shipped scope check did not train on, and DICOM
files whose header says CT or lateral."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from deepcovid.lungs.weights import card_path
from deepcovid.scope.weights import SHIPPED_WEIGHTS
from tests.conftest import CXR_DEV, SHARED_DATA
from tests.dicom.conftest import write_cr

NONFRONTAL = SHARED_DATA / "nonfrontal"
CXR_FULLRES = SHARED_DATA / "cxr-fullres"
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
    """path, kind (frontal | lateral | ct) of every real held-out image."""
    held = heldout_patients()
    frames = []
    for folder, kind in ((CXR_DEV, "frontal"), (CXR_FULLRES, "frontal"), (NONFRONTAL, None)):
        table = pd.read_csv(folder / "manifest.csv")
        table = table[table["patient_id"].astype(str).isin(held)]
        frames.append(
            pd.DataFrame(
                {
                    "path": [str(folder / p) for p in table["path"]],
                    "kind": kind if kind else table["kind"].tolist(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


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
