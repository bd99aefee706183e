"""Issue 23's outputs end to end on the real cxr-dev radiographs, from the shared cxr-dev run:
failure cases, the model card and self-contained safetensors, an ensemble with test-time
augmentation. (The checklist and Table 1: tests/test_evaluate.py; the lung SEG: the real
DICOMs in tests/dicom/test_segmentation.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deepcovid.data.io import load_image
from deepcovid.export import export
from deepcovid.metrics.predictions import read_predictions
from deepcovid.models.checkpoints import load_classifier
from deepcovid.models.exported import load_exported, metadata_path
from tests.conftest import CXR_DEV, best_checkpoint, requires_real_data
from tests.results.test_failures import brute_force
from tests.test_ensemble import altered_copy, flipped_prob_covid, listed, run_predict

pytestmark = [requires_real_data, pytest.mark.realdata, pytest.mark.slow]


def test_failure_cases_are_the_most_confident_mistakes(cxr_dev_run: Path) -> None:
    cases = read_predictions(cxr_dev_run / "failures" / "failure_cases.csv")
    predictions = read_predictions(cxr_dev_run / "predictions" / "test.csv")
    threshold = float(cases["threshold"].iloc[0])
    assert not cases.empty and set(cases["threshold"]) == {threshold}
    assert list(zip(cases["kind"], cases["path"], strict=True)) == brute_force(
        predictions, threshold, 4
    )
    assert cases["path"].str.startswith(str(CXR_DEV)).all()
    assert (cxr_dev_run / "failures" / "failure_cases.png").stat().st_size > 10_000


def test_model_card_and_the_safetensors_file_alone(cxr_dev_run: Path, tmp_path: Path) -> None:
    checkpoint = best_checkpoint(cxr_dev_run)
    weights = export(checkpoint, "safetensors", tmp_path)
    matter = yaml.safe_load((tmp_path / "README.md").read_text().split("---\n")[1])
    stored = json.loads((cxr_dev_run / "metrics" / "test.json").read_text())
    metrics = {m["name"]: m for m in matter["model-index"][0]["results"][0]["metrics"]}
    assert metrics["AUROC"]["value"] == stored["auroc"]
    assert metrics["AUROC"]["args"]["interval"] == stored["auroc_ci"]
    assert len(matter["datasets"]) >= 2  # cxr-dev's manifest names its sources
    metadata_path(weights).unlink()
    alone, original = load_exported(weights), load_classifier(checkpoint)
    paths = sorted((CXR_DEV / "test").rglob("*.*"))[:8]
    batch = torch.stack([alone.eval_transform(load_image(p)) for p in paths])
    with torch.no_grad():
        assert torch.equal(alone.prob_covid(batch), original.prob_covid(batch))


def test_ensemble_with_flip_tta_is_the_mean_of_four_scores(
    cxr_dev_run: Path, tmp_path: Path
) -> None:
    best = best_checkpoint(cxr_dev_run)
    members = [best, altered_copy(best, tmp_path / "other.ckpt")]
    inputs = CXR_DEV / "test" / "covid"
    single = [run_predict(str(m), inputs, tmp_path / f"m{k}") for k, m in enumerate(members)]
    paths = single[0]["path"].tolist()
    flipped = [flipped_prob_covid(m, paths) for m in members]
    frame = run_predict(listed(members), inputs, tmp_path / "ensemble", "tta=[hflip]")
    assert frame["path"].tolist() == paths
    four = [s["prob_covid"].to_numpy() for s in single] + flipped
    assert np.abs(four[0] - four[2]).max() > 1e-4  # the flip changes the scores
    np.testing.assert_allclose(frame["prob_covid"], np.mean(four, axis=0), rtol=0, atol=1e-6)
    recorded = json.loads((tmp_path / "ensemble" / "model.json").read_text())
    assert recorded["checkpoints"] == [str(m) for m in members]
    assert recorded["tta"] == ["hflip"]


def test_an_evaluation_on_cxr_dev_reads_back_from_mlflow(
    cxr_dev_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    from deepcovid.evaluate import evaluate
    from deepcovid.utils.config import compose_config

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the client below reads the same
    uri = f"file:{tmp_path / 'mlruns'}"
    overrides = [
        f"ckpt_path={best_checkpoint(cxr_dev_run)}", f"data.root={CXR_DEV}", "logger=mlflow",
        f"logger.mlflow.tracking_uri={uri}", "trainer=cpu", "trainer.enable_progress_bar=false",
        "print_config=false", "data.num_workers=0", "metrics.bootstrap_resamples=20",
    ]  # fmt: skip
    evaluate(compose_config("eval", overrides, str(tmp_path / "eval")))
    client = mlflow.MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("deepcovid").experiment_id])
    stored = json.loads((tmp_path / "eval" / "metrics" / "test.json").read_text())
    assert stored["counts"]["n"] == 135  # cxr-dev's test split
    assert run.data.metrics["test/auroc"] == pytest.approx(stored["auroc"])
    assert run.data.metrics["test/n"] == 135
    files = {entry.path for entry in client.list_artifacts(run.info.run_id, "evaluation/test")}
    assert {"evaluation/test/test.json", "evaluation/test/checklist.md"} <= files
