"""python -m deepcovid.evaluate on a checkpoint trained on the real cxr-dev radiographs: every
file exists and metrics/test.json agrees with a recomputation from predictions/*.csv."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deepcovid.evaluation import evaluate
from sklearn.metrics import average_precision_score, roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.callbacks.test_evaluation import FILES
from tests.conftest import CXR_DEV, requires_real_data

real_data = pytest.mark.realdata
DATA = [f"data.root={CXR_DEV}", "data.image_size=48", "data.num_workers=0"]
QUIET = ["trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
RESAMPLES = "metrics.bootstrap_resamples=200"


def test_eval_config_composes_and_refuses_other_splits(tmp_path: Path) -> None:
    cfg = compose_config("eval", ["ckpt_path=x.ckpt", "data.split=train"], str(tmp_path))
    assert cfg.metrics.target_sensitivity == 0.98 and cfg.task_name == "eval"
    with pytest.raises(ValueError, match="data.split='train'"):
        evaluate(cfg)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch resnet18 run on cxr-dev (its final test writes an evaluation too)."""
    out = tmp_path_factory.mktemp("cxr_train")
    overrides = [
        *DATA,
        *QUIET,
        RESAMPLES,
        "model.pretrained=false",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "logger=csv",
    ]
    train(compose_config("train", overrides, output_dir=str(out)))
    return out


@pytest.fixture(scope="module")
def evaluated(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cxr_eval")
    (checkpoint,) = (trained / "checkpoints").glob("best-epoch*.ckpt")
    cfg = compose_config("eval", [f"ckpt_path={checkpoint}", *DATA, *QUIET, RESAMPLES], str(out))
    evaluate(cfg)
    return out


def rates(label: np.ndarray, prob: np.ndarray, threshold: float) -> tuple[float, float]:
    called = prob >= threshold
    return called[label == 1].mean(), (~called[label == 0]).mean()


@requires_real_data
@real_data
def test_every_file_exists(evaluated: Path) -> None:
    for name in FILES:
        assert (evaluated / name).is_file(), name
    predictions = pd.read_csv(evaluated / "predictions" / "test.csv")
    assert {"path", "label", "prob_covid", "patient_id", "source", "finding"} <= set(predictions)
    assert predictions["path"].str.contains("/test/").all()


@requires_real_data
@real_data
def test_metrics_agree_with_a_recomputation_from_the_csv(evaluated: Path) -> None:
    metrics = json.loads((evaluated / "metrics" / "test.json").read_text())
    test = pd.read_csv(evaluated / "predictions" / "test.csv")
    label, prob = test["label"].to_numpy(), test["prob_covid"].to_numpy()
    assert (metrics["n_positive"], metrics["n_negative"]) == (label.sum(), (label == 0).sum())
    assert metrics["auroc"] == pytest.approx(roc_auc_score(label, prob), abs=1e-6)
    assert metrics["average_precision"] == pytest.approx(
        average_precision_score(label, prob), abs=1e-6
    )
    low, high = metrics["auroc_ci"]
    assert low <= metrics["auroc"] <= high and metrics["bootstrap"]["unit"] == "patient"
    assert metrics["n_patients"] == test["patient_id"].nunique()
    for point in metrics["operating_points"]:
        if point["threshold"] is None:  # e.g. no val threshold reaches the target: say why
            assert point["undefined"], point
            continue
        called = prob >= point["threshold"]
        tp, fn = int((called & (label == 1)).sum()), int((~called & (label == 1)).sum())
        tn, fp = int((~called & (label == 0)).sum()), int((called & (label == 0)).sum())
        assert (point["tp"], point["fn"], point["tn"], point["fp"]) == (tp, fn, tn, fp)
        assert point["sensitivity"] == pytest.approx(tp / (tp + fn))
        assert point["specificity_ci"] == pytest.approx(
            list(proportion_confint(tn, tn + fp, method="wilson"))
        )
    val = pd.read_csv(evaluated / "predictions" / "val.csv")
    val_label, val_prob = val["label"].to_numpy(), val["prob_covid"].to_numpy()
    chosen = next(p for p in metrics["operating_points"] if p["name"] == "target_sensitivity")
    reaching = [t for t in np.unique(val_prob) if rates(val_label, val_prob, t)[0] >= 0.98]
    assert chosen["threshold"] == max(reaching)
    assert set(metrics["subgroups"]) == {"source", "finding"}


@requires_real_data
@real_data
def test_train_final_test_wrote_the_same_evaluation(trained: Path, evaluated: Path) -> None:
    for name in FILES:
        assert (trained / name).is_file(), name
    for split in ("test", "val"):
        by_train = pd.read_csv(trained / "predictions" / f"{split}.csv")
        by_evaluate = pd.read_csv(evaluated / "predictions" / f"{split}.csv")
        assert list(by_train["path"]) == list(by_evaluate["path"])
        np.testing.assert_allclose(by_train["prob_covid"], by_evaluate["prob_covid"], atol=1e-6)
    first = json.loads((trained / "metrics" / "test.json").read_text())
    second = json.loads((evaluated / "metrics" / "test.json").read_text())
    thresholds = [[p["threshold"] for p in m["operating_points"]] for m in (first, second)]
    assert [t is None for t in thresholds[0]] == [t is None for t in thresholds[1]]
    defined = [[t for t in ts if t is not None] for ts in thresholds]
    np.testing.assert_allclose(*defined, atol=1e-6)
    assert first["auroc"] == pytest.approx(second["auroc"], abs=1e-6)


@requires_real_data
@real_data
@pytest.mark.slow
def test_cli_then_report(trained: Path, tmp_path: Path) -> None:
    (checkpoint,) = (trained / "checkpoints").glob("best-epoch*.ckpt")
    run_dir = tmp_path / "eval"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deepcovid.evaluate",
            f"ckpt_path={checkpoint}",
            *DATA,
            *QUIET,
            "metrics.bootstrap_resamples=50",
            "data.split=val",
            f"hydra.run.dir={run_dir}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    metrics = json.loads((run_dir / "metrics" / "val.json").read_text())
    assert metrics["split"] == "val" and "optimistic" in (run_dir / "report.md").read_text()
    subprocess.run(
        [sys.executable, "-m", "deepcovid.report", str(run_dir), "--split", "val"],
        check=True,
        capture_output=True,
        text=True,
    )
    table = pd.read_csv(tmp_path / "eval" / "comparison" / "comparison.csv")
    assert set(table["model"]) == {"resnet18"}  # from metrics/val.json: eval runs have no model
