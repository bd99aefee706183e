"""The CSV log keeps every attempt's rows: resuming in the same run folder appends."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from deepcovid.train import train
from deepcovid.utils.config import compose_config
from deepcovid.utils.csv_logger import ATTEMPT, HistoryCSVLogger
from tests.conftest import TINY_RUN, tiny_overrides


def test_a_new_attempt_appends_with_its_number_and_new_columns(tmp_path: Path) -> None:
    first = HistoryCSVLogger(tmp_path, name="csv", version="")
    first.log_metrics({"val/loss": 0.5}, step=0)
    first.save()
    second = HistoryCSVLogger(tmp_path, name="csv", version="")
    second.log_metrics({"val/loss": 0.4, "test/auroc": 0.9}, step=1)
    second.save()
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert logged[ATTEMPT].tolist() == [1, 2]
    assert logged["val/loss"].tolist() == [0.5, 0.4]
    assert logged["test/auroc"].isna().tolist() == [True, False]


def test_rows_reach_the_file_at_every_checkpoint(tmp_path: Path) -> None:
    logger = HistoryCSVLogger(tmp_path, name="csv", version="")
    logger.log_metrics({"train/loss_step": 0.7}, step=0)
    logger.after_save_checkpoint(None)  # a run killed now keeps the row
    assert pd.read_csv(tmp_path / "csv" / "metrics.csv")["train/loss_step"].tolist() == [0.7]


@pytest.mark.slow
def test_resuming_with_ckpt_path_last_keeps_the_metric_history(
    tiny_run: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    for part in ("checkpoints/last.ckpt", "csv/metrics.csv"):  # the 2-epoch run, copied
        (tmp_path / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tiny_run / part, tmp_path / part)
    before = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    overrides = tiny_overrides(
        covidx5k_shared, tmp_path, *TINY_RUN, "trainer.max_epochs=4", "ckpt_path=last", "test=false"
    )
    train(compose_config("train", overrides, str(tmp_path)))
    after = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    pd.testing.assert_frame_equal(after.iloc[: len(before)][before.columns], before)
    validated = after.dropna(subset=["val/auroc"])
    assert validated["epoch"].tolist() == [0, 1, 2, 3]
    assert validated[ATTEMPT].tolist() == [1, 1, 2, 2]
