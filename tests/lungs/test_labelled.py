"""Training data: sources, the patient-grouped split, mask pairing, augmentation."""

from __future__ import annotations

import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from deepcovid.lungs import labelled
from deepcovid.lungs.labelled import (
    Augmentation,
    ImageRecord,
    LabelledImage,
    WorkingSet,
    heldout_split,
    load_labelled,
    read_sources,
    working_arrays,
    working_target,
)
from deepcovid.lungs.masks import V7_ZIP_NAME, V7LungMasks
from tests.lungs.conftest import synthetic_chest, write_chests


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A manifest of 6 generated chests: 4 with lung_mask, 2 without; 3 patients."""
    paths = write_chests(tmp_path / "images", 6)
    frame = pd.DataFrame(
        {
            "path": [f"images/{p.name}" for p in paths],
            "patient_id": ["a", "a", "b", "b", "c", "c"],
            "lung_mask": [f"images/masks/{p.name}" for p in paths[:4]] + ["", ""],
        }
    )
    frame.to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path / "manifest.csv"


def test_read_sources_resolves_paths_and_masks(source: Path) -> None:
    records = read_sources({"gen": source}, v7=None)
    assert len(records) == 6 and all(r.source == "gen" for r in records)
    assert records[0].path == source.parent / "images" / "chest_0.png"
    assert [r.has_mask for r in records] == [True] * 4 + [False] * 2
    assert records[0].group == "patient:a"


def test_v7_masks_fill_in_by_file_name(source: Path, tmp_path: Path) -> None:
    zip_path = tmp_path / V7_ZIP_NAME
    _, lungs = synthetic_chest(60, 48, seed=5)
    with zipfile.ZipFile(zip_path, "w") as archive:
        buffer = BytesIO()
        Image.fromarray(lungs.astype(np.uint8) * 255).save(buffer, format="PNG")
        archive.writestr("semantic_masks_v7labs_lungs/chest_5.png", buffer.getvalue())
    v7 = V7LungMasks(zip_path)
    records = read_sources({"gen": source}, v7)
    assert records[5].v7_name == "chest_5.png" and records[4].v7_name is None
    assert records[0].v7_name is None  # a given lung_mask wins
    item = load_labelled(records[5], v7)
    np.testing.assert_array_equal(item.lung, lungs)


def test_manifest_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sources.x=.*nope.csv"):
        read_sources({"x": tmp_path / "nope.csv"}, None)
    pd.DataFrame({"file": ["a.png"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="needs a 'path' column"):
        read_sources({"x": tmp_path / "bad.csv"}, None)


def records_of(patients: list[str]) -> list[ImageRecord]:
    return [ImageRecord(Path(f"img{i}.png"), "s", p) for i, p in enumerate(patients)]


def test_split_keeps_patients_whole_and_is_seeded() -> None:
    records = records_of([f"p{i // 3}" for i in range(60)])  # 20 patients, 3 images each
    train, heldout = heldout_split(records, 0.2, seed=0)
    assert len(train) + len(heldout) == 60
    assert not {r.patient_id for r in train} & {r.patient_id for r in heldout}
    assert len({r.patient_id for r in heldout}) == 4
    assert heldout == heldout_split(records, 0.2, seed=0)[1]
    assert heldout != heldout_split(records, 0.2, seed=1)[1]


def test_split_groups_copies_of_a_file_without_patient_ids() -> None:
    records = [ImageRecord(Path(f"{s}/img{i}.png"), s, "") for s in "ab" for i in range(10)]
    train, heldout = heldout_split(records, 0.3, seed=0)
    assert not {r.path.name for r in train} & {r.path.name for r in heldout}
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        heldout_split(records, 1.0, seed=0)


def test_working_arrays_skip_unusable_records(source: Path, tmp_path: Path) -> None:
    records = read_sources({"gen": source}, None)[:4]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"")
    empty = tmp_path / "empty_mask.png"
    Image.fromarray(np.zeros((48, 60), dtype=np.uint8)).save(empty)
    records += [
        ImageRecord(broken, "gen", "z", mask_path=records[0].mask_path),
        ImageRecord(records[0].path, "gen", "z", mask_path=empty),
    ]
    pixels, targets, skipped = working_arrays(records, None, size=32)
    assert pixels.shape == (4, 32, 32) and pixels.dtype == np.uint8
    assert set(np.unique(targets)) == {0, labelled.LUNG}
    assert len(skipped) == 2
    assert "broken.png" in skipped[0] and "lung mask is empty" in skipped[1]


def test_v7_ignore_pixels_become_ignore_targets(tmp_path: Path) -> None:
    lung = np.zeros((40, 40), dtype=bool)
    lung[5:35, 5:15] = True
    ignore = np.zeros_like(lung)
    ignore[0:3, 0:40] = True  # markup outside the lungs
    ignore[10:12, 5:15] = True  # a device drawn over the lung (V7: not lung there)
    item = LabelledImage(
        ImageRecord(tmp_path / "x.png", "s", ""), Image.new("L", (40, 40)), lung & ~ignore, ignore
    )
    target = working_target(item, 40)
    assert (target[0:3] == labelled.IGNORE).all() and (target[10:12, 5:15] == labelled.IGNORE).all()
    assert (target[20, 5:15] == labelled.LUNG).all()


def test_augmentation_moves_image_and_mask_together() -> None:
    image, lungs = synthetic_chest(64, 64, seed=3)
    dataset = WorkingSet(image[None], lungs[None].astype(np.uint8), Augmentation(degrees=20))
    torch.manual_seed(0)
    pixels, target = dataset[0]
    assert pixels.shape == (1, 64, 64) and target.shape == (64, 64)
    assert target.dtype == torch.long and set(target.unique().tolist()) <= {0, 1}
    dark = pixels[0] < pixels[0].mean()  # lungs are the dark pixels inside the body
    agreement = (dark[target == 1]).float().mean()
    assert agreement > 0.9
    plain = WorkingSet(image[None], lungs[None].astype(np.uint8))
    assert torch.equal(plain[0][1], torch.from_numpy(lungs.astype(np.int64)))
