"""Synthetic CR radiographs for the DICOM result tests, with a chosen Patient's Age."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid

from tests.conftest import SHARED_DATA, chest_like

REAL_DICOMS = [
    SHARED_DATA / "dicom" / "siim-chest-monochrome1.dcm",
    SHARED_DATA / "dicom" / "siim-chest-monochrome2.dcm",
]
SIZE = 64


def write_cr(
    path: Path, patient_age: str = "45", orientation: list[str] | None = None, **attributes
) -> Path:
    """A small CR Image Storage file; only ``patient_age`` (and ``attributes``) may be invalid.

    With ``orientation`` it also has Imager Pixel Spacing, the projection descriptors that
    highdicom's image library reads; without, Patient Orientation is empty as in many exports.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = "20200415", "101500"
    ds.AccessionNumber, ds.StudyID = "ACC0001", "S1"
    ds.ReferringPhysicianName = "Ref^Doctor"
    ds.Modality = "CR"
    ds.Manufacturer = "Test Vendor"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientName, ds.PatientID = "Doe^Jane", "P0001"
    ds.PatientBirthDate, ds.PatientSex = "19750101", "F"
    ds.BodyPartExamined, ds.ViewPosition = "CHEST", "PA"
    ds.PatientOrientation = orientation or ""
    if orientation:
        ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (chest_like(SIZE, seed=3, positive=True).astype(np.uint16) * 16).tobytes()
    with warnings.catch_warnings():  # pydicom warns about the invalid values chosen here
        warnings.simplefilter("ignore", UserWarning)
        ds.PatientAge = patient_age
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def overlay() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
