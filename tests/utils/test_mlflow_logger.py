"""logger=mlflow: one tiny training run and an evaluation of its checkpoint into the run
folder's local MLflow store, read back with MLflow's own client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepcovid.utils.mlflow_logger import metric_key
from tests.conftest import best_checkpoint, tiny_overrides

mlflow = pytest.importorskip("mlflow")


def artifacts(client, run_id: str, folder: str = "") -> set[str]:
    """Every artifact file of the run under ``folder``, recursively."""
    found = set()
    for entry in client.list_artifacts(run_id, folder or None):
        found |= artifacts(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return found


def test_metric_keys_are_names_mlflow_accepts() -> None:
    assert metric_key("test/fixed@0.5/sensitivity") == "test/fixed_at_0.5/sensitivity"
    assert metric_key("val/auroc") == "val/auroc"


@pytest.mark.slow
def test_training_and_evaluation_read_back_with_mlflow(
    covidx5k_shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepcovid.evaluate import evaluate
    from deepcovid.models.checkpoints import read_record
    from deepcovid.report import main as report
    from deepcovid.train import train
    from deepcovid.utils.config import compose_config

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the client below reads the same
    out = tmp_path / "train"
    overrides = tiny_overrides(covidx5k_shared, out, "logger=mlflow", "explainer=gradcam")
    overrides += ["data.val_fraction=0.25", "metrics.bootstrap_resamples=20"]
    train(compose_config("train", overrides, str(out)))
    uri = f"file:{out / 'mlruns'}"
    client = mlflow.MlflowClient(uri)
    [run] = client.search_runs(
        [client.get_experiment_by_name("deepcovid").experiment_id], max_results=5
    )
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params["model.backbone"] == "resnet18"
    assert [m.step for m in client.get_metric_history(run_id, "train/loss_step")]
    [auroc] = client.get_metric_history(run_id, "val/auroc")  # one epoch
    test = json.loads((out / "metrics" / "test.json").read_text())
    assert run.data.metrics["test/auroc"] == pytest.approx(test["auroc"])
    record = read_record(best_checkpoint(out))
    assert record.tracking["mlflow_run_id"] == run_id
    files = artifacts(client, run_id)
    assert "evaluation/test/test.json" in files and "evaluation/test/report.md" in files
    assert "evaluation/test/test.csv" in files
    assert {f for f in files if f.startswith("plots/val/")}  # the val curves
    heatmaps = {f for f in files if f.startswith("heatmaps/test/")}
    assert "heatmaps/test/grid.png" in heatmaps and len(heatmaps) > 1
    downloaded = client.download_artifacts(run_id, "evaluation/test/test.json", str(tmp_path))
    assert json.loads(Path(downloaded).read_text())["auroc"] == test["auroc"]

    evaluated = tmp_path / "eval"  # evaluate into the same store: a second run beside it
    eval_overrides = [
        f"ckpt_path={best_checkpoint(out)}",
        f"data.root={covidx5k_shared}",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri={uri}",
        "trainer=cpu",
        "trainer.enable_progress_bar=false",
        "print_config=false",
        "data.num_workers=0",
        "metrics.bootstrap_resamples=20",
    ]
    evaluate(compose_config("eval", eval_overrides, str(evaluated)))
    runs = client.search_runs([run.info.experiment_id], max_results=5)
    [other] = [r for r in runs if r.info.run_id != run_id]
    assert other.data.metrics["test/auroc"] == pytest.approx(test["auroc"])
    assert "evaluation/test/test.json" in artifacts(client, other.info.run_id)
    assert not (evaluated / "mlruns").exists()  # the tracking URI given was used

    report(["--no-wandb", "--resamples", "20", "--mlflow", uri, str(out)])
    runs = client.search_runs([run.info.experiment_id], "tags.`mlflow.runName` = 'train-report'")
    [reported] = runs
    assert "comparison.md" in artifacts(client, reported.info.run_id)
