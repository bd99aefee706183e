"""The Optuna sweeper runs trials and keeps its study in SQLite."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import tiny_overrides

optuna = pytest.importorskip("optuna", reason="install the sweep extra: pip install -e .[sweep]")


@pytest.mark.slow
def test_optuna_two_trials_in_sqlite(covidx5k_shared: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "deepcovid.train",
            "-m",
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.storage={storage}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "print_config=false",
            *tiny_overrides(covidx5k_shared, tmp_path, "trainer.max_epochs=2"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    study = optuna.load_study(study_name="deepcovid-resnet18", storage=storage)
    trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2
    assert {"model.optimizer.lr", "model.finetune"} <= trials[0].params.keys()
    assert all(0.0 <= t.value <= 1.0 for t in trials)  # validation AUROC
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_value"] == max(t.value for t in trials)
    # each trial's value is the score of its best (tested) checkpoint, not the last epoch's
    for trial in trials:
        (job,) = (tmp_path / "sweep").glob(f"{trial.number}-*")
        state = torch.load(job / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]
        (best,) = [v for k, v in state.items() if k.startswith("BestCheckpoint")]
        assert trial.value == pytest.approx(float(best["best_model_score"]))
