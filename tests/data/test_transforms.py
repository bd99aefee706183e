"""Model input from a radiograph: the preprocessing record, the eval and train presets, and
masks through the eval geometry."""

import numpy as np
import pytest
import torch
from PIL import Image

from deepcovid.data.transforms import STEPS, EvalPreset, Preprocessing, ToChannels, TrainPreset


def test_preprocessing_refuses_what_cannot_be_made_and_round_trips() -> None:
    with pytest.raises(ValueError, match="crop_ratio"):
        Preprocessing(crop_ratio=1.5)
    with pytest.raises(ValueError, match="outside_lungs"):
        Preprocessing(outside_lungs="grey")
    with pytest.raises(ValueError, match="do not fit 3 channel"):
        Preprocessing(mean=(0.5, 0.5), std=(0.2, 0.2))
    changed = Preprocessing().replace(image_size=64, crop_ratio=None)
    assert (changed.image_size, changed.crop_ratio) == (64, Preprocessing().crop_ratio)
    assert Preprocessing.from_dict({**changed.to_dict(), "added_later": 1}) == changed


def test_the_steps_name_the_lung_cut_where_there_is_one() -> None:
    assert Preprocessing().steps == STEPS and not Preprocessing().uses_lung_masks
    cut = Preprocessing(lung_crop=True, outside_lungs="blank").steps
    assert cut.startswith("load_image (8-bit grayscale); pixels outside the lung mask set to 0; ")
    assert "cropped to the lungs' box widened by 0.05 of its size (masks: segmenter" in cut


def test_eval_input_is_resized_centre_cropped_normalised_and_masks_follow() -> None:
    preprocessing = Preprocessing(image_size=32, crop_ratio=0.5, mean=(0.5,), std=(0.25,))
    preset = EvalPreset(preprocessing)
    pixels = np.zeros((64, 128), dtype=np.uint8)
    pixels[24:40, 56:72] = 255  # inside the centre crop (rows 16:48, columns 48:80)
    x = preset(Image.fromarray(pixels))
    assert x.shape == (3, 32, 32) and torch.equal(x[0], x[2])
    assert x.max() == pytest.approx(2.0) and x.min() == pytest.approx(-2.0)  # (1 − 0.5) / 0.25
    mask = preset.mask(pixels > 0)
    assert mask.shape == (32, 32) and mask.dtype == torch.bool
    assert torch.equal(mask, x[0] > 0) and mask.sum() == 16 * 16  # the same pixels


def test_train_input_has_the_model_shape_and_channels_repeat() -> None:
    preset = TrainPreset(Preprocessing(image_size=24, channels=1, mean=(0.5,), std=(0.5,)))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8))
    assert preset(image).shape == (1, 24, 24)
    batch = torch.zeros(2, 1, 4, 4)
    assert ToChannels(3)(batch).shape == (2, 3, 4, 4) and ToChannels(1)(batch) is batch
