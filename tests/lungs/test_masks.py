"""Lung masks as data: the V7 zip index, mask files and folders, fitting, cropping."""

from __future__ import annotations

import importlib.util
import io
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepcovid.lungs import masks
from deepcovid.lungs.masks import (
    MaskMismatchError,
    V7LungMasks,
    fit_mask,
    folder_mask_path,
    locate_v7_zip,
    lung_box,
    mask_from_pixels,
    read_mask_file,
)
from tests.conftest import CXR_DEV, requires_real_data


def v7_labels(width: int, height: int) -> np.ndarray:
    """A V7-style mask: two lungs (255) and a device (127) over the left one."""
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[height // 5 : -height // 5, width // 8 : width * 3 // 8] = 255
    labels[height // 5 : -height // 5, width * 5 // 8 : width * 7 // 8] = 255
    labels[height // 3 : height // 3 + 4, width // 8 : width // 8 + 6] = 127
    return labels


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def v7_zip(tmp_path: Path) -> Path:
    """A zip laid out like torchxrayvision's: a folder entry and PNGs named like the images."""
    path = tmp_path / masks.V7_ZIP_NAME
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("semantic_masks_v7labs_lungs/", b"")
        archive.writestr("semantic_masks_v7labs_lungs/case-1.jpg", png_bytes(v7_labels(400, 300)))
        empty = np.zeros((300, 300), dtype=np.uint8)
        archive.writestr("semantic_masks_v7labs_lungs/lateral.png", png_bytes(empty))
    return path


def test_index_maps_file_names_to_members(v7_zip: Path) -> None:
    index = V7LungMasks(v7_zip)
    assert len(index) == 2
    assert "case-1.jpg" in index and "lateral.png" in index
    assert "case-1.png" not in index and "semantic_masks_v7labs_lungs/" not in index
    assert index.members["case-1.jpg"] == "semantic_masks_v7labs_lungs/case-1.jpg"


def test_read_mask_keeps_lung_only(v7_zip: Path) -> None:
    index = V7LungMasks(v7_zip)
    labels = index.read_labels("case-1.jpg")
    assert labels.shape == (300, 400) and set(np.unique(labels)) == {0, 127, 255}
    mask = index.read_mask("case-1.jpg")
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, labels == 255)
    with pytest.raises(KeyError, match="nope.png: no V7 lung mask"):
        index.read_mask("nope.png")


def test_mask_for_fits_a_downscaled_copy(v7_zip: Path, tmp_path: Path) -> None:
    index = V7LungMasks(v7_zip)
    mask = index.mask_for(tmp_path / "any" / "case-1.jpg", (341, 256))  # 400x300 → short side 256
    assert mask.shape == (256, 341)
    assert abs(mask.mean() - index.read_mask("case-1.jpg").mean()) < 0.01
    assert index.mask_for("missing.jpg", (10, 10)) is None
    assert index.mask_for("lateral.png", (300, 300)) is None  # empty: V7 drew no lungs


def test_mask_for_refuses_another_crop(v7_zip: Path) -> None:
    with pytest.raises(MaskMismatchError, match=r"case-1\.jpg.*400x300.*300x300.*another crop"):
        V7LungMasks(v7_zip).mask_for("x/case-1.jpg", (300, 300))


def test_fit_mask_passes_through_and_resizes_nearest() -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[20:80, 30:90] = True
    np.testing.assert_array_equal(fit_mask(mask, (200, 100)), mask)
    small = fit_mask(mask, (50, 25))
    assert small.shape == (25, 50) and small.dtype == bool
    assert small[5:20, 8:22].all() and not small[:, 25:].any()
    fit_mask(mask, (203, 100))  # 1.5 % off: a rounding difference, accepted
    with pytest.raises(MaskMismatchError, match="mine.png.*differ by 4.0%"):
        fit_mask(mask, (200, 104), source="mine.png")


@pytest.mark.parametrize(
    ("values", "lung_value"), [((0, 1), 1), ((0, 255), 255), ((0, 127, 255), 255)]
)
def test_mask_files_of_common_encodings(tmp_path: Path, values: tuple, lung_value: int) -> None:
    pixels = np.array([values * 4], dtype=np.uint8).reshape(1, -1)
    path = tmp_path / "m.png"
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(read_mask_file(path), pixels == lung_value)


def test_rgb_and_empty_mask_files(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[1:3, 1:3] = 255
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_mask_file(tmp_path / "rgb.png").sum() == 4
    assert not mask_from_pixels(np.zeros((3, 3), dtype=np.uint8)).any()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png: not a readable mask image"):
        read_mask_file(tmp_path / "broken.png")


def test_folder_lookup_by_stem(tmp_path: Path) -> None:
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "p01.png").write_bytes(b"")
    assert folder_mask_path(tmp_path / "masks", "/data/train/p01.jpg") == tmp_path / "masks/p01.png"
    assert folder_mask_path(tmp_path / "masks", "/data/train/p02.jpg") is None


def test_lung_box_widens_within_the_image() -> None:
    mask = np.zeros((100, 100), dtype=bool)
    mask[10:60, 20:90] = True
    assert lung_box(mask, margin=0.0) == (20, 10, 90, 60)
    assert lung_box(mask, margin=0.1) == (13, 5, 97, 65)
    assert lung_box(mask, margin=0.5) == (0, 0, 100, 85)
    with pytest.raises(ValueError, match="empty"):
        lung_box(np.zeros((5, 5), dtype=bool))


def test_locate_reports_a_missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"not installed: pip install 'deepcovid\[lungs\]'"):
        locate_v7_zip()
    spec = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(FileNotFoundError, match="has no data/semantic_masks_v7labs_lungs.zip"):
        locate_v7_zip()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / masks.V7_ZIP_NAME).write_bytes(b"")
    assert locate_v7_zip() == tmp_path / "data" / masks.V7_ZIP_NAME


@pytest.fixture(scope="module")
def installed_v7() -> V7LungMasks:
    try:
        return V7LungMasks()
    except FileNotFoundError as error:
        pytest.skip(str(error))


def test_installed_zip_holds_the_517_masks(installed_v7: V7LungMasks) -> None:
    assert len(installed_v7) == 517


@requires_real_data
def test_316_cxr_dev_images_have_a_v7_mask(installed_v7: V7LungMasks) -> None:
    manifest = pd.read_csv(CXR_DEV / "manifest.csv")
    names = manifest["path"].map(lambda p: Path(p).name)
    matched = manifest[names.isin(installed_v7.members)]
    assert len(matched) == 316
    assert set(matched["label"]) == {"covid"}  # the non-COVID images have none
    first = matched.iloc[0]
    image = Image.open(CXR_DEV / first["path"])
    mask = installed_v7.mask_for(first["path"], image.size)
    assert mask.shape == (image.height, image.width) and 0.1 < mask.mean() < 0.7


def test_blank_lung_mask_cells_are_none_under_any_pandas() -> None:
    column = pd.Series(["a.png", None, "", "  "], dtype="string").astype(object)
    column = pd.concat([column, pd.Series([np.nan, pd.NA, "b.png"], dtype=object)])
    assert masks.given_masks(column) == ["a.png", None, None, None, None, None, "b.png"]
    read_back = pd.DataFrame({"lung_mask": ["a.png", None]})["lung_mask"]  # NaN on pandas 3
    assert masks.given_masks(read_back) == ["a.png", None]
