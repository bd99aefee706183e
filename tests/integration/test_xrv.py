"""model=xrv end to end on the real cxr-dev radiographs from a local weights file (a
torchxrayvision DenseNet state dict with random weights): it trains and evaluates with its own
preprocessing recorded, warns when evaluated images may be in its pretraining corpora, is
audited, and predicts on the two real DICOMs with SR and overlay SC results that dciodvfy
accepts."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import pandas as pd
import pydicom
import pytest
import torch

from deepcovid.audit import audit
from deepcovid.dicom.codes import CERTAINTY_OF_FINDING
from deepcovid.evaluate import evaluate
from deepcovid.models.checkpoints import load_classifier
from deepcovid.predict import predict
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from deepcovid.utils.files import sha256_of
from tests.conftest import CXR_DEV, SHARED_DATA, best_checkpoint, requires_real_data
from tests.dicom.dciodvfy import dciodvfy_available, verify
from tests.dicom.sr_text import render_sr_text

xrv = pytest.importorskip("torchxrayvision")
pytestmark = [requires_real_data, pytest.mark.realdata, pytest.mark.slow]
QUIET = ["trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
         "print_config=false", "data.num_workers=0", "metrics.bootstrap_resamples=50",
         "logger=csv"]  # fmt: skip
SEEN = "may have been seen in pretraining: source 'CheXpert-v1.0-small' is drawn from CheXpert"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xrv_run")
    torch.manual_seed(0)
    torch.save(xrv.models.DenseNet(weights=None).state_dict(), out / "xrv-all.pt")
    overrides = [
        *QUIET, f"data.root={CXR_DEV}", "model=xrv", f"model.weights_path={out / 'xrv-all.pt'}",
        "data.image_size=96", "data.batch_size=8", "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
    ]  # fmt: skip
    train(compose_config("train", overrides, str(out)))
    return out


@pytest.fixture(scope="module")
def chexpert_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve cxr-dev test images, the non-COVID ones said to come from CheXpert."""
    given = pd.read_csv(CXR_DEV / "manifest.csv")
    test = given[given["path"].str.startswith("test/")]
    picked = pd.concat(
        [test[test["label"] == "covid"].head(6), test[test["label"] != "covid"].head(6)]
    )
    picked = picked.assign(
        path=[str(CXR_DEV / p) for p in picked["path"]],
        source=["CheXpert-v1.0-small" if label != "covid" else s
                for label, s in zip(picked["label"], picked["source"], strict=True)],
    )  # fmt: skip
    path = tmp_path_factory.mktemp("chexpert") / "manifest.csv"
    picked[["path", "label", "patient_id", "source"]].to_csv(path, index=False)
    return path


def on_manifest(manifest: Path) -> list[str]:
    return [f"data.root={manifest.parent}", f"data.manifest={manifest}"]


def test_xrv_trains_and_evaluates_with_its_preprocessing_recorded(run: Path, tmp_path: Path):
    model = load_classifier(best_checkpoint(run))
    p = model.record.preprocessing
    assert (p.channels, p.image_size, p.crop_ratio, p.mean, p.std) == (
        1,
        96,
        1.0,
        (0.5,),
        (1 / 2048,),
    )
    assert model.net.features.conv0.in_channels == 1 and model.net.classifier.out_features == 2
    assert "CheXpert" in model.record.pretrained_on
    report = (run / "report.md").read_text()
    assert "pretrained on NIH ChestX-ray14, PadChest, CheXpert" in report
    assert "seen in pretraining" not in report  # cxr-dev's sources are not among its corpora
    evaluated = evaluate(compose_config(
        "eval", [*QUIET, f"ckpt_path={best_checkpoint(run)}", f"data.root={CXR_DEV}"], str(tmp_path)
    ))  # fmt: skip
    trained = json.loads((run / "metrics" / "test.json").read_text())
    assert evaluated.auroc == pytest.approx(trained["auroc"], abs=1e-6)
    assert evaluated.counts.n == 135


def test_provenance_warning_on_a_chexpert_sourced_manifest(
    run: Path, chexpert_manifest: Path, tmp_path: Path
) -> None:
    overrides = [*QUIET, f"ckpt_path={best_checkpoint(run)}", "external=true",
                 *on_manifest(chexpert_manifest)]  # fmt: skip
    evaluation = evaluate(compose_config("eval", overrides, str(tmp_path)))
    assert any(SEEN in note for note in evaluation.notes)
    assert SEEN in (tmp_path / "report.md").read_text()


def test_audit_runs_on_the_one_channel_model(run: Path, chexpert_manifest: Path, tmp_path: Path):
    overrides = [
        f"ckpt_path={best_checkpoint(run)}", "external=true", *on_manifest(chexpert_manifest),
        "audit.bootstrap_resamples=50", "logger=none", "print_config=false", "data.num_workers=0",
        "device=cpu", "audit.explainers.occlusion.window=16",
        "audit.explainers.occlusion.stride=16", "audit.sanity.images=4",
    ]  # fmt: skip
    result = audit(compose_config("audit", overrides, str(tmp_path)))
    images = pd.read_csv(tmp_path / "audit" / "images.csv")
    assert len(images) == 12
    assert result.masks.n_images == 12
    for method in ("occlusion", "gradcam"):
        share = images[f"lung_share_{method}"]
        scored = result.lung_attribution[method].overall
        assert share.dropna().between(0, 1).all(), method
        # a map without positive attribution (random weights: Grad-CAM often) is counted, not scored
        assert scored.n + scored.zero_maps == 12 and share.notna().sum() == scored.n, method
    assert result.lung_attribution["occlusion"].overall.n > 0
    assert set(result.ablation) == {"intact", "lungs_removed", "lungs_only"}


def test_predict_on_real_dicoms_writes_sr_and_overlay_that_dciodvfy_accepts(
    run: Path, tmp_path: Path
) -> None:
    checkpoint = best_checkpoint(run)
    overrides = [f"ckpt_path={checkpoint}", f"inputs={SHARED_DATA / 'dicom'}", "explainer=gradcam",
                 "dicom_output=true", "device=cpu"]  # fmt: skip
    predict(compose_config("predict", overrides, str(tmp_path)))
    predictions = pd.read_csv(tmp_path / "predictions.csv").set_index("path")
    listed = json.loads((tmp_path / "dicom" / "results.json").read_text())
    assert len(listed["written"]) == 2 and listed["failed"] == {} and listed["not_dicom"] == []
    for entry in listed["written"]:
        source = pydicom.dcmread(entry["source"], stop_before_pixels=True)
        sr = hd.sr.srread(entry["report"])
        assert sr.StudyInstanceUID == source.StudyInstanceUID
        [group] = sr.content.get_image_measurement_groups()
        [measurement] = group.get_measurements(name=CERTAINTY_OF_FINDING)
        assert measurement.value == pytest.approx(
            predictions.loc[entry["source"], "prob_covid"], abs=1e-6
        )
        text = render_sr_text(entry["report"])
        assert sha256_of(checkpoint) in text and "fixed threshold 0.2 (model.threshold)" in text
        overlay = pydicom.dcmread(entry["overlay"])
        assert overlay.StudyInstanceUID == source.StudyInstanceUID
        assert overlay.SeriesInstanceUID not in (source.SeriesInstanceUID, sr.SeriesInstanceUID)
        assert overlay.pixel_array.ndim == 3 and overlay.pixel_array.shape[2] == 3
        assert {r["keyword"] for r in entry["repairs"]} >= {"PatientAge"}
        if dciodvfy_available():
            for written in (entry["report"], entry["overlay"]):
                checked = verify(written)
                assert checked.errors == (), checked.output
