from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepcovid.data.io import UnreadableImageError, load_image, to_uint8
from tests.conftest import MODES, SHARED_DATA, chest_like, save_in_mode


@pytest.mark.parametrize(("mode", "suffix"), MODES)
def test_every_container_mode_reads_as_8bit_gray(tmp_path: Path, mode: str, suffix: str) -> None:
    array = chest_like(40, seed=1, positive=True)
    path = save_in_mode(array, tmp_path / f"x{suffix}", mode)
    image = load_image(path)
    assert image.mode == "L"
    assert image.size == (40, 40)
    decoded = np.asarray(image).astype(int)
    if mode == "I;16":  # 16-bit data is stretched to the full 8-bit range
        array = to_uint8(array)
    tolerance = 12 if suffix == ".jpg" or mode == "P" else 1  # lossy JPEG / palette quantisation
    assert np.abs(decoded - array.astype(int)).mean() < tolerance


def test_16bit_png_is_rescaled_to_full_range(tmp_path: Path) -> None:
    array = np.linspace(1000, 5000, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    gray = np.asarray(load_image(tmp_path / "deep.png"))
    assert gray.min() == 0 and gray.max() == 255
    assert np.all(np.diff(gray.ravel().astype(int)) >= 0)  # monotone mapping kept


def test_rgba_is_composited_not_dropped(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0  # one transparent pixel becomes background (black)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    gray = np.asarray(load_image(tmp_path / "a.png"))
    assert gray[1, 1] == 200 and gray[0, 0] == 0


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    image = Image.fromarray(np.zeros((10, 30), np.uint8))  # 30 wide, 10 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    image.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").size == (10, 30)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"not an image at all", "cannot decode"), (None, "truncated")],
)
def test_bad_files_raise_an_error_naming_the_file(tmp_path: Path, content, message) -> None:
    path = tmp_path / "bad.png"
    if content is None:
        save_in_mode(chest_like(64, 0, True), path, "L")
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=message) as error:
        load_image(path)
    assert str(path) in str(error.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_to_uint8_constant_image() -> None:
    assert to_uint8(np.full((3, 3), 7)).max() == 0


DICOM = SHARED_DATA / "dicom"


@pytest.mark.skipif(not DICOM.is_dir(), reason="../shared/data/dicom is absent")
def test_real_dicom_monochrome1_is_inverted() -> None:
    # Both files hold the same pixel values; only the photometric tag differs, so the
    # MONOCHROME1 file (low value = white) must come out as the negative of MONOCHROME2.
    mono2 = np.asarray(load_image(DICOM / "siim-chest-monochrome2.dcm")).astype(int)
    mono1 = np.asarray(load_image(DICOM / "siim-chest-monochrome1.dcm")).astype(int)
    assert mono2.shape == (1024, 1024)
    assert np.abs(mono1 - (255 - mono2)).mean() < 1
    assert mono2.std() > 20  # a real radiograph, not a blank frame


def test_invalid_dicom_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"DICM" + b"\x00" * 300)
    with pytest.raises(UnreadableImageError, match="broken.dcm"):
        load_image(path)


def test_dicom_window_is_applied_after_the_rescale(tmp_path: Path) -> None:
    """The window is in rescaled units (e.g. HU): stored 0..4095 with intercept −2048 and a
    window of −1024..1024 leaves the lowest and the highest quarter black and white."""
    import pydicom

    from tests.dicom.conftest import write_cr

    path = write_cr(tmp_path / "rescaled.dcm")
    dataset = pydicom.dcmread(path)
    size = int(dataset.Rows) * int(dataset.Columns)
    stored = np.linspace(0, 4095, size).round().astype(np.uint16)
    dataset.PixelData = stored.reshape(dataset.Rows, dataset.Columns).tobytes()
    dataset.RescaleSlope, dataset.RescaleIntercept, dataset.RescaleType = 1, -2048, "US"
    dataset.WindowCenter, dataset.WindowWidth = 0, 2048
    dataset.save_as(path)
    gray = np.asarray(load_image(path)).reshape(-1)
    assert (gray == 0).mean() == pytest.approx(0.25, abs=0.02)
    assert (gray == 255).mean() == pytest.approx(0.25, abs=0.02)


def test_the_pixel_limit_holds_in_every_decoding_thread(tmp_path: Path) -> None:
    """Between the limit and twice it Pillow only warns, and ``warnings.catch_warnings`` is not
    thread-safe: every one of many images just over the limit must be refused, in threads."""
    from concurrent.futures import ThreadPoolExecutor

    from deepcovid.data.io import DEFAULT_MAX_IMAGE_PIXELS, set_max_image_pixels

    paths = []
    for i in range(64):
        path = tmp_path / f"over{i}.png"
        Image.new("L", (120, 100), i).save(path)  # 12,000 pixels: 1.2x the limit below
        paths.append(path)

    def refused(path: Path) -> bool:
        try:
            load_image(path)
        except UnreadableImageError as error:
            return "exceeds the limit of 10000 pixels" in str(error)
        return False

    set_max_image_pixels(10_000)
    try:
        for _ in range(5):
            with ThreadPoolExecutor(max_workers=8) as pool:
                assert all(pool.map(refused, paths))
    finally:
        set_max_image_pixels(DEFAULT_MAX_IMAGE_PIXELS)
