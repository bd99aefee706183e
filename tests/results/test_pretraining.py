"""Pretraining corpora: names matched through aliases, overlap decided on image collections."""

from deepcovid.models.xrv import XRV_WEIGHTS
from deepcovid.results.pretraining import canonical_corpus, overlap_note, pretraining_overlap


def test_aliases() -> None:
    assert canonical_corpus("CheXpert-v1.0-small") == "CheXpert"
    assert canonical_corpus("chex") == "CheXpert"
    assert (
        canonical_corpus("NIH ChestX-ray14")
        == canonical_corpus("ChestX-ray8")
        == "NIH ChestX-ray14"
    )
    assert canonical_corpus("MIMIC-CXR-JPG") == "MIMIC-CXR"
    assert canonical_corpus("Kaggle RSNA Pneumonia") == "RSNA Pneumonia (Kaggle)"
    assert canonical_corpus("PC") == "PadChest"
    for unrelated in ("COVID-19 image data collection", "Figure 1 COVID-19 CXR initiative",
                      "picture archive", "convincing", "Kaggle COVID-19 Radiography"):  # fmt: skip
        assert canonical_corpus(unrelated) is None, unrelated


def test_overlap_on_image_collections() -> None:
    all_weights = XRV_WEIGHTS["densenet121-res224-all"].pretrained_on
    sources = ["COVID-19 image data collection", "CheXpert", "SIIM-ACR pneumothorax"]
    # SIIM-ACR images are NIH ChestX-ray14 images, which -all was trained on
    assert pretraining_overlap(all_weights, sources) == {
        "CheXpert": "CheXpert",
        "SIIM-ACR pneumothorax": "NIH ChestX-ray14",
    }
    assert pretraining_overlap(("ImageNet-1k",), sources) == {}
    assert pretraining_overlap(XRV_WEIGHTS["densenet121-res224-pc"].pretrained_on, sources) == {}
    note = overlap_note(all_weights, ["chexpert"], "test")
    assert note.startswith("The test images may have been seen in pretraining: source 'chexpert'")
    assert overlap_note(all_weights, ["COVID-19 image data collection"], "test") is None
