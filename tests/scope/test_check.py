"""The scope check: DICOM headers, the shipped weights (verified, on held-out real images) and
generated non-radiographs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from deepcovid.scope.check import ScopeVerdict, header_reason, load_checker
from deepcovid.scope.synthetic import synthetic_image
from deepcovid.scope.weights import PACKAGE_DIR, SHIPPED_WEIGHTS
from deepcovid.utils.shipped import WeightsIntegrityError, card_path
from tests.conftest import requires_real_data
from tests.scope.conftest import heldout_images


@pytest.fixture(scope="module")
def checker():
    return load_checker()


def header(**values: str) -> Dataset:
    dataset = Dataset()
    for keyword, value in values.items():
        setattr(dataset, keyword, value)
    return dataset


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"Modality": "CR", "ViewPosition": "PA", "BodyPartExamined": "CHEST"}, ""),
        ({"Modality": "DX", "ViewPosition": "AP"}, ""),
        ({}, ""),  # nothing stated: the image check decides
        ({"Modality": "CT"}, "DICOM Modality CT"),
        ({"Modality": "MR", "ViewPosition": "PA"}, "DICOM Modality MR"),
        ({"Modality": "CR", "ViewPosition": "LL"}, "DICOM ViewPosition LL"),
        ({"Modality": "DX", "ViewPosition": "LATERAL"}, "DICOM ViewPosition LATERAL"),
        ({"Modality": "CR", "BodyPartExamined": "ABDOMEN"}, "DICOM BodyPartExamined ABDOMEN"),
        ({"Modality": "cr", "ViewPosition": " pa "}, ""),
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # lower case, padded on purpose
def test_header_reason(values: dict[str, str], reason: str) -> None:
    assert header_reason(header(**values)) == reason


def test_ct_and_lateral_dicom_refused_by_header(checker, header_dicoms) -> None:
    verdicts, unreadable = checker.check_paths(header_dicoms.values())
    assert not unreadable
    assert verdicts[header_dicoms["ct"]] == ScopeVerdict(False, "DICOM Modality CT")
    assert verdicts[header_dicoms["lateral"]] == ScopeVerdict(False, "DICOM ViewPosition LL")
    assert verdicts[header_dicoms["abdomen"]] == ScopeVerdict(
        False, "DICOM BodyPartExamined ABDOMEN"
    )
    # same pixels, a chest PA header: judged by the image check, not the header
    assert not verdicts[header_dicoms["chest_pa"]].reason.startswith("DICOM")


def test_generated_non_radiographs_are_out_of_scope(checker) -> None:
    rng = np.random.default_rng(12345)  # seeds the training never drew (it used 0 and 1)
    images = [Image.fromarray(synthetic_image(rng, 200)) for _ in range(40)]
    images += [Image.new("L", (300, 200), 0), Image.new("L", (300, 200), 255)]
    verdicts = checker.check_images(images)
    outside = [v for v in verdicts if not v.in_scope]
    assert len(outside) >= 0.9 * len(images), [v.reason for v in verdicts]
    assert all(v.reason.startswith("image check: ") and "(p=" in v.reason for v in outside)


def test_changed_weights_are_refused_naming_the_file(tmp_path: Path) -> None:
    weights = tmp_path / SHIPPED_WEIGHTS.name
    shutil.copy(SHIPPED_WEIGHTS, weights)
    shutil.copy(card_path(SHIPPED_WEIGHTS), card_path(weights))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match=f"{weights}.*deepcovid.scope.train"):
        load_checker(weights)
    card_path(weights).unlink()
    with pytest.raises(FileNotFoundError, match="scope_net.json: missing"):
        load_checker(weights)


@requires_real_data
def test_shipped_check_on_heldout_patients(checker) -> None:
    """Recomputes the model card's held-out numbers on patients the weights never saw."""
    images = heldout_images()
    verdicts, unreadable = checker.check_paths(map(Path, images["path"]))
    assert not unreadable
    images["in_scope"] = [verdicts[Path(p)].in_scope for p in images["path"]]
    images["correct"] = images["in_scope"] == (images["kind"] == "frontal")
    shipped = json.loads((PACKAGE_DIR / "scope_net_evaluation.json").read_text())["heldout"]
    frontal = images[images["kind"] == "frontal"]
    nonfrontal = images[images["kind"] != "frontal"]
    for part, name in ((frontal, "frontal"), (nonfrontal, "nonfrontal")):
        assert (int(part["correct"].sum()), len(part)) == (
            shipped[name]["correct"],
            shipped[name]["n"],
        )
    assert frontal["correct"].mean() >= 0.9
    assert nonfrontal["correct"].mean() >= 0.8
    wrong = nonfrontal[~nonfrontal["correct"]]
    reasons = [verdicts[Path(p)].reason for p in nonfrontal["path"] if p not in set(wrong["path"])]
    assert all(r.startswith("image check: ") for r in reasons)
