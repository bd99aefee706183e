"""train(): checkpoints, the tested best checkpoint, its score as the sweep objective, resume."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from deepcovid.train import TrainResult, check_monitor, objective, train
from deepcovid.utils.config import compose_config
from tests.conftest import best_checkpoint, tiny_overrides


def run(root: Path, out: Path, *extra: str) -> TrainResult:
    cfg = compose_config("train", tiny_overrides(root, out, *extra), output_dir=str(out))
    return train(cfg)


def test_train_writes_checkpoints_and_test_predictions(tiny_run: Path) -> None:
    assert (tiny_run / "checkpoints" / "last.ckpt").is_file()
    predictions = pd.read_csv(tiny_run / "predictions" / "test.csv")
    assert list(predictions.columns[:3]) == ["path", "label", "prob_covid"]
    assert len(predictions) == 14 and predictions["path"].is_unique
    assert predictions["prob_covid"].between(0, 1).all()


def test_the_best_checkpoint_is_tested_and_its_score_is_the_objective(
    covidx5k_shared: Path, tmp_path: Path
) -> None:
    result = run(covidx5k_shared, tmp_path, "trainer.max_epochs=3", "data.val_fraction=0.25",
                 "metrics.bootstrap_resamples=20", "optimized_metric=val/auroc")  # fmt: skip
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv").dropna(subset=["val/auroc"])
    best_row = logged.sort_values(["val/auroc", "val/loss"], ascending=[False, True]).iloc[0]
    assert result.best_score == pytest.approx(best_row["val/auroc"])
    assert result.best_epoch == int(best_row["epoch"])
    assert result.best_checkpoint == str(best_checkpoint(tmp_path))
    assert result.evaluation.model.checkpoint == result.best_checkpoint
    cfg = compose_config("train", ["optimized_metric=val/auroc"])
    assert objective(cfg, result) == result.best_score  # not the last epoch's val/auroc
    assert objective(compose_config("train"), result) is None  # no sweep, no objective


def test_unknown_metric_names_stop_the_run_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"monitor='val/aucroc' is not a logged metric.*val/auroc"):
        check_monitor(compose_config("train", ["monitor=val/aucroc"]))
    with pytest.raises(ValueError, match="optimized_metric='val/auc' is not a logged metric"):
        check_monitor(compose_config("train", ["optimized_metric=val/auc"]))
    with pytest.raises(ValueError, match="differs from monitor"):
        check_monitor(compose_config("train", ["optimized_metric=val/loss"]))


def test_resume_from_checkpoint_continues_training(covidx5k_shared: Path, tmp_path: Path):
    first = tmp_path / "first"
    run(covidx5k_shared, first, "test=false")
    state = torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 0 and state["global_step"] == 2
    second = tmp_path / "second"
    run(
        covidx5k_shared,
        second,
        "test=false",
        "trainer.max_epochs=2",
        f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}",
    )
    resumed = torch.load(second / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1 and resumed["global_step"] == 4  # one more epoch, not two
