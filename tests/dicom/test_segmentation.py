"""The lung mask as a DICOM SEG: read back with highdicom on the source's grid, referenced by
the SR's evidence, and checked with dciodvfy where dicom3tools is installed."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from deepcovid.dicom import AlgorithmInfo, write_dicom_results
from deepcovid.dicom.codes import ANATOMICAL_STRUCTURE, ARTIFICIAL_INTELLIGENCE, LUNG
from deepcovid.dicom.segmentation import LungMaskSource, on_source_grid
from tests.conftest import requires_real_data
from tests.dicom.conftest import REAL_DICOMS, SIZE, write_cr
from tests.dicom.test_results import check_dciodvfy

CLASSIFIER = AlgorithmInfo(weights_sha256="0123456789abcdef" * 4)
SEGMENTER = AlgorithmInfo(weights_sha256="f" * 64, name="deepcovid lung segmenter")


def two_lungs(rows: int, columns: int) -> np.ndarray:
    mask = np.zeros((rows, columns), bool)
    mask[rows // 8 : rows * 7 // 8, columns // 8 : columns * 7 // 16] = True
    mask[rows // 8 : rows * 3 // 4, columns * 9 // 16 : columns * 7 // 8] = True
    return mask


def read_mask(seg_path: Path, source: Path) -> np.ndarray:
    """The SEG's "Lung" segment on the source's frame, read with highdicom."""
    seg = hd.seg.segread(seg_path)
    uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
    pixels = seg.get_pixels_by_source_instance([uid], segment_numbers=[1])
    assert pixels.shape[0] == 1 and pixels.shape[-1] == 1
    return pixels[0, ..., 0].astype(bool)


def write(source: Path, out: Path, lungs: LungMaskSource):
    return write_dicom_results(source, 0.6, 0.5, "fixed", None, CLASSIFIER, out, lungs=lungs)


@pytest.mark.parametrize("mask_side", [SIZE, SIZE // 2], ids=["same-grid", "resampled"])
def test_segmenter_mask_written_read_back_and_referenced(tmp_path: Path, mask_side: int) -> None:
    source = write_cr(tmp_path / "cr.dcm", patient_age="45", orientation=["L", "F"])
    mask = two_lungs(mask_side, mask_side)
    results = write(source, tmp_path / "out", LungMaskSource(mask, "segmenter", SEGMENTER))
    assert results.segmentation == tmp_path / "out" / "cr.seg.dcm"
    assert results.lung_mask_origin == "segmenter"
    expected = on_source_grid(mask, SIZE, SIZE)
    assert expected.shape == (SIZE, SIZE) and expected.sum() > 0
    if mask_side == SIZE:
        np.testing.assert_array_equal(expected, mask)
    np.testing.assert_array_equal(read_mask(results.segmentation, source), expected)

    original = pydicom.dcmread(source, stop_before_pixels=True)
    seg = hd.seg.segread(results.segmentation)
    assert seg.SOPInstanceUID == results.segmentation_uid
    assert seg.StudyInstanceUID == original.StudyInstanceUID
    assert seg.PatientID == original.PatientID and seg.PatientAge == "045Y"  # repaired header
    assert seg.SegmentationType == "BINARY"
    [segment] = seg.SegmentSequence
    assert segment.SegmentLabel == "Lung" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == ANATOMICAL_STRUCTURE.value
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == LUNG.value
    [algorithm] = segment.SegmentationAlgorithmIdentificationSequence
    assert algorithm.AlgorithmName == "deepcovid lung segmenter"
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeValue == ARTIFICIAL_INTELLIGENCE.value
    assert "f" * 64 in algorithm.AlgorithmParameters
    [reference] = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert reference.ReferencedSOPInstanceUID == original.SOPInstanceUID

    evidence = hd.sr.srread(results.report).get_evidence()  # (study, series, SOP, class)
    assert {(uids[2], uids[3]) for uids in evidence} == {
        (original.SOPInstanceUID, original.SOPClassUID),
        (results.segmentation_uid, pydicom.uid.SegmentationStorage),
    }
    check_dciodvfy(results.segmentation, results.report)


def test_v7_mask_is_manual_with_no_algorithm(tmp_path: Path) -> None:
    source = write_cr(tmp_path / "cr.dcm", patient_age="045Y")
    mask = two_lungs(SIZE, SIZE)
    results = write(source, tmp_path / "out", LungMaskSource(mask, "v7"))
    [segment] = hd.seg.segread(results.segmentation).SegmentSequence
    assert segment.SegmentAlgorithmType == "MANUAL"
    assert "SegmentationAlgorithmIdentificationSequence" not in segment
    np.testing.assert_array_equal(read_mask(results.segmentation, source), mask)
    check_dciodvfy(results.segmentation, results.report)


def test_segmenter_mask_without_its_identity_is_refused() -> None:
    with pytest.raises(ValueError, match="needs the segmenter"):
        LungMaskSource(two_lungs(8, 8), "segmenter")


def test_resampling_is_nearest_on_rows_and_columns() -> None:
    mask = np.zeros((4, 8), bool)
    mask[:, :4] = True
    grid = on_source_grid(mask, 8, 16)
    assert grid.shape == (8, 16) and grid[:, :8].all() and not grid[:, 8:].any()
    assert (np.asarray(Image.fromarray(grid)) == grid).all()


@requires_real_data
@pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent the intended person")
@pytest.mark.parametrize("source", REAL_DICOMS, ids=lambda path: path.stem)
def test_real_siim_dicom_segmentation(tmp_path: Path, source: Path) -> None:
    header = pydicom.dcmread(source, stop_before_pixels=True)
    mask = two_lungs(256, 256)  # the SIIM files are 1024 px square: resampled up
    results = write(source, tmp_path, LungMaskSource(mask, "segmenter", SEGMENTER))
    read = read_mask(results.segmentation, source)
    assert read.shape == (header.Rows, header.Columns)
    np.testing.assert_array_equal(read, on_source_grid(mask, header.Rows, header.Columns))
    check_dciodvfy(results.segmentation, results.report)
