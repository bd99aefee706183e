"""Every command on CUDA, as users type them: ``python -m pytest -m gpu`` on a GPU machine.

Synthetic radiograph-sized images (about 1,500 px JPEGs, :mod:`benchmarks.gpu`'s generator) are
made in a temp folder; ``train`` runs with bf16-mixed, channels_last, the pixel cache and
on-device normalisation for 2 epochs, then ``evaluate``, ``predict`` (occlusion and Grad-CAM,
DICOM results for the two real DICOMs of ``../shared/data/dicom`` when present), ``audit``,
a 2-backbone multirun and ``report``, ``export`` and ``lungs.segment``, each on the GPU.

Skipped without CUDA. ``DEEPCOVID_GPU_SMOKE_DEVICE=cpu`` runs the same commands on the CPU
(with 32-true precision), to check this file on a machine without a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmarks.gpu import radiograph
from tests.conftest import SHARED_DATA, best_checkpoint

DEVICE = os.environ.get("DEEPCOVID_GPU_SMOKE_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(
        DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA device"
    ),
]
ON_GPU = DEVICE == "cuda"
TRAINER = (
    ["trainer=gpu", "model.channels_last=true"]  # bf16-mixed, cudnn benchmark
    if ON_GPU
    else ["trainer=cpu", "trainer.precision=32-true"]
)
COUNTS = {"train/covid": 12, "train/non": 28, "test/covid": 8, "test/non": 12}
SOURCE_SIZE = 1500 if ON_GPU else 300  # px, about
DICOMS = SHARED_DATA / "dicom"
TEST_IMAGES = COUNTS["test/covid"] + COUNTS["test/non"]


LOGS = os.environ.get("DEEPCOVID_GPU_SMOKE_LOGS")  # a folder: every command's output kept


def command(*args: str) -> subprocess.CompletedProcess:
    """``python -m ARGS``; fails the test with the command's last output on a non-zero exit."""
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True)
    if LOGS:
        with (Path(LOGS) / "commands.log").open("a") as log:
            log.write(f"$ {' '.join(args)}\nexit {result.returncode}\n")
            log.write(result.stdout[-3000:] + result.stderr[-6000:] + "\n")
    assert result.returncode == 0, f"{args[0]} exited {result.returncode}:\n" + (
        result.stdout[-2000:] + result.stderr[-6000:]
    )
    return result


@pytest.fixture(scope="module")
def radiographs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COVID-Xray-5k tree of radiograph-sized synthetic JPEGs."""
    root = tmp_path_factory.mktemp("gpu") / "radiographs"
    seed = 0
    for folder, count in COUNTS.items():
        (root / folder).mkdir(parents=True)
        for i in range(count):
            radiograph(seed, SOURCE_SIZE).save(root / folder / f"{i:03d}.jpg", quality=90)
            seed += 1
    return root


def train_overrides(root: Path, *extra: str) -> list[str]:
    """Two short epochs on the GPU's fast path: pixel cache, uint8 batches normalised there."""
    return [
        f"data.root={root}",
        "model.pretrained=false",
        "data.cache=true",
        "data.normalize_on_device=true",
        "data.batch_size=8",
        "data.num_workers=2",
        "data.val_fraction=0.25",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "metrics.bootstrap_resamples=50",
        "logger=csv",
        "print_config=false",
        *TRAINER,
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(radiographs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m deepcovid.train`` on the device; its run folder."""
    run = tmp_path_factory.mktemp("gpu") / "train"
    command("deepcovid.train", *train_overrides(radiographs, f"hydra.run.dir={run}"))
    return run


def test_train(trained: Path) -> None:
    metrics = json.loads((trained / "metrics" / "test.json").read_text())
    assert len(pd.read_csv(trained / "predictions" / "test.csv")) == TEST_IMAGES
    assert metrics["precision"] == "32-true"  # final test in float32 whatever the training
    assert 0.0 <= metrics["auroc"] <= 1.0
    assert (trained / "checkpoints" / "last.ckpt").is_file()


def test_evaluate(trained: Path, radiographs: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    command(
        "deepcovid.evaluate", f"ckpt_path={best_checkpoint(trained)}", f"data.root={radiographs}",
        "data.num_workers=2", "logger=csv", "metrics.bootstrap_resamples=50",
        f"hydra.run.dir={out}", *TRAINER[:1],
    )  # fmt: skip
    evaluated = pd.read_csv(out / "predictions" / "test.csv")
    trained_test = pd.read_csv(trained / "predictions" / "test.csv")
    merged = evaluated.merge(trained_test, on="path", suffixes=("", "_train"))
    assert len(merged) == len(trained_test)
    # float32 evaluation on both sides (no TF32): the same weights give the same scores
    difference = (merged["prob_covid"] - merged["prob_covid_train"]).abs().max()
    assert difference < 1e-5, f"evaluate and train's test differ by up to {difference:.2e}"


@pytest.mark.parametrize("explainer", ["occlusion", "gradcam"])
def test_predict_with_heatmaps_and_dicom_results(
    trained: Path, radiographs: Path, tmp_path: Path, explainer: str
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for path in sorted((radiographs / "test" / "covid").iterdir())[:3]:
        (inputs / path.name).symlink_to(path)
    dicoms = sorted(DICOMS.glob("*.dcm")) if DICOMS.is_dir() else []
    for path in dicoms:
        (inputs / path.name).symlink_to(path)
    out = tmp_path / "predict"
    command(
        "deepcovid.predict", f"ckpt_path={best_checkpoint(trained)}", f"inputs={inputs}",
        f"explainer={explainer}", f"device={DEVICE}", "dicom_output=true",
        f"hydra.run.dir={out}",
    )  # fmt: skip
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == 3 + len(dicoms)
    assert len(list((out / "heatmaps").glob("*.png"))) == 3 + len(dicoms)
    if dicoms:
        results = json.loads((out / "dicom" / "results.json").read_text())
        assert len(results["written"]) == len(dicoms)
        assert len(list((out / "dicom").glob("*.sr.dcm"))) == len(dicoms)
        assert len(list((out / "dicom").glob("*.overlay.dcm"))) == len(dicoms)


def test_audit(trained: Path, radiographs: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    command(
        "deepcovid.audit", f"ckpt_path={best_checkpoint(trained)}", f"data.root={radiographs}",
        "data.num_workers=2", "logger=csv", f"device={DEVICE}", "audit.masks.v7=false",
        "audit.bootstrap_resamples=50", f"hydra.run.dir={out}",
    )  # fmt: skip
    images = pd.read_csv(out / "audit" / "images.csv")
    assert len(images) == TEST_IMAGES


def test_multirun_of_two_backbones_then_report(radiographs: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    command(
        "deepcovid.train", "-m", "model=resnet18,squeezenet", f"hydra.sweep.dir={sweep}",
        *train_overrides(radiographs, "trainer.max_epochs=1"),
    )  # fmt: skip
    command("deepcovid.report", str(sweep), "--no-wandb")
    table = pd.read_csv(sweep / "comparison" / "comparison.csv")
    assert set(table["model"]) == {"resnet18", "squeezenet"}


def test_export_then_predict_from_the_export(
    trained: Path, radiographs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    command(
        "deepcovid.export", f"ckpt_path={best_checkpoint(trained)}", f"output_dir={out}",
        f"hydra.run.dir={out}",
    )  # fmt: skip
    (weights,) = out.glob("*.safetensors")
    predicted = tmp_path / "predict"
    command(
        "deepcovid.predict", f"ckpt_path={weights}", f"inputs={radiographs / 'test'}",
        f"device={DEVICE}", f"hydra.run.dir={predicted}",
    )  # fmt: skip
    exported = pd.read_csv(predicted / "predictions.csv")
    assert len(exported) == TEST_IMAGES


def test_lungs_segment(radiographs: Path, tmp_path: Path) -> None:
    out = tmp_path / "lungs"
    command(
        "deepcovid.lungs.segment", f"inputs={radiographs / 'test'}", f"device={DEVICE}",
        f"output_dir={out}", f"hydra.run.dir={out}",
    )  # fmt: skip
    masks = pd.read_csv(out / "lung_masks.csv")
    assert len(masks) == TEST_IMAGES
