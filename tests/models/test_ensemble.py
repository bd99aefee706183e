"""The ensemble and TTA model: the mean of the members' P(COVID) over views, which checkpoints
a folder names, and members refused when they read their input differently."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from deepcovid.data.transforms import Preprocessing
from deepcovid.metrics.scores import log_odds_covid, prob_covid
from deepcovid.models.ensemble import (
    EnsembleMismatchError,
    MeanProbabilityNet,
    check_members,
    checkpoint_paths,
    mean_val_predictions,
)
from deepcovid.models.record import ModelRecord
from deepcovid.models.tta import tta_views


def small_net(seed: int, scale: float = 1.0) -> nn.Module:
    torch.manual_seed(seed)
    linear = nn.Linear(3 * 8 * 8, 2)
    with torch.no_grad():
        linear.weight.mul_(scale)
    return nn.Sequential(nn.Flatten(), linear).eval()


def test_the_score_is_the_mean_of_the_members_probabilities_over_the_views() -> None:
    nets = [small_net(0), small_net(1)]
    views = tta_views(["hflip", "crop"], 0.75)
    images = torch.randn(5, 3, 8, 8)
    combined = prob_covid(MeanProbabilityNet(nets, views)(images))
    each = [prob_covid(net(view(images))) for net in nets for view in views]
    torch.testing.assert_close(combined, torch.stack(each).mean(0), rtol=0, atol=1e-6)
    assert len(views) == 6 and [v.name for v in views[:2]] == ["identity", "hflip"]
    torch.testing.assert_close(views[1](images), images.flip(-1))


def test_confident_members_keep_finite_log_odds() -> None:
    nets = [small_net(0, scale=1e4), small_net(1, scale=1e4)]
    images = torch.randn(4, 3, 8, 8)
    logits = MeanProbabilityNet(nets, tta_views([]))(images)
    assert torch.isfinite(log_odds_covid(logits)).all()


def test_a_run_folder_names_its_best_checkpoint_and_a_multirun_folder_each_runs(tmp_path):
    bests = []
    for run in ("0", "1"):
        (tmp_path / "multirun" / run / "checkpoints").mkdir(parents=True)
        for name in ("best-epoch=1.ckpt", "last.ckpt"):
            (tmp_path / "multirun" / run / "checkpoints" / name).touch()
        bests.append(tmp_path / "multirun" / run / "checkpoints" / "best-epoch=1.ckpt")
    assert checkpoint_paths(tmp_path / "multirun" / "0") == bests[:1]
    assert checkpoint_paths(str(tmp_path / "multirun")) == bests
    assert checkpoint_paths([str(bests[0]), tmp_path / "multirun" / "1"]) == bests
    with pytest.raises(FileNotFoundError, match="a folder without checkpoints/best-"):
        checkpoint_paths(tmp_path)
    with pytest.raises(ValueError, match="names a checkpoint twice"):
        checkpoint_paths([bests[0], tmp_path / "multirun" / "0"])


def record(image_size: int = 32, val: pd.DataFrame | None = None) -> ModelRecord:
    return ModelRecord(
        "resnet18", "layer4", Preprocessing(image_size=image_size), 0.5, val_predictions=val
    )


def test_members_reading_their_input_differently_are_refused_naming_both() -> None:
    paths = [Path("a.ckpt"), Path("b.ckpt")]
    with pytest.raises(EnsembleMismatchError, match=r"a\.ckpt and b\.ckpt differ in "
                       r"preprocessing\.image_size \(32 vs 64\)"):  # fmt: skip
        check_members(paths, [record(32), record(64)])
    check_members(paths, [record(32), record(32)])


def test_val_predictions_are_averaged_per_shared_image() -> None:
    first = pd.DataFrame(
        {"path": ["x", "y", "z"], "label": [1, 0, 1], "prob_covid": [0.9, 0.2, 0.6]}
    )
    second = pd.DataFrame({"path": ["y", "x"], "label": [0, 1], "prob_covid": [0.4, 0.5]})
    mean = mean_val_predictions([record(val=first), record(val=second)])
    assert mean["path"].tolist() == ["x", "y"]
    np.testing.assert_allclose(mean["prob_covid"], [0.7, 0.3])
    np.testing.assert_allclose(mean["logit_covid"], np.log([0.7 / 0.3, 0.3 / 0.7]))
