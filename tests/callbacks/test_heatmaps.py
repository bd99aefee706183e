"""The heatmap callback in real (tiny) training runs, and its rank/epoch gating."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from deepcovid.callbacks.heatmaps import HeatmapLogger
from deepcovid.explain.explainers import GradCamExplainer
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from deepcovid.utils.instantiate import instantiate_callbacks
from tests.conftest import tiny_overrides
from tests.utils.test_tracking import offline_runs


def overrides(root: Path, out: Path, *extra: str) -> list[str]:
    return [o for o in tiny_overrides(root, out, *extra) if o != "logger=csv"]


@pytest.mark.slow
def test_gradcam_panels_go_to_the_run_dir_and_wandb(covidx5k_shared: Path, tmp_path: Path):
    cfg = compose_config(
        "train",
        overrides(
            covidx5k_shared,
            tmp_path,
            "explainer=gradcam",
            "callbacks.heatmaps.every_n_epochs=1",
            "logger=wandb",
            "logger.wandb.mode=offline",
            "data.val_fraction=0.25",
        ),
        output_dir=str(tmp_path),
    )
    train(cfg)
    val = sorted((tmp_path / "heatmaps" / "val" / "epoch000").glob("*.png"))
    test = sorted((tmp_path / "heatmaps" / "test").glob("*.png"))
    assert val and test and (tmp_path / "heatmaps" / "test" / "grid.png") in test
    assert any("false" in p.name or "true" in p.name for p in test)  # confident cases shown
    (run,) = offline_runs(tmp_path)
    logged = list((run / "files" / "media" / "images" / "heatmaps").rglob("gradcam_*.png"))
    assert {p.parent.name for p in logged} == {"val", "test"}
    assert len(logged) == len(val) - 1 + len(test) - 1  # every overlay, not the grids


@pytest.mark.slow
def test_occlusion_panels_every_n_epochs(covidx5k_shared: Path, tmp_path: Path):
    cfg = compose_config(
        "train",
        [
            *tiny_overrides(covidx5k_shared, tmp_path),
            "explainer=occlusion",
            "explainer.window=8",
            "explainer.stride=4",
            "callbacks.heatmaps.every_n_epochs=2",
            "trainer.max_epochs=3",
            "test=false",
        ],
        output_dir=str(tmp_path),
    )
    (callback,) = [c for c in instantiate_callbacks(cfg.callbacks) if isinstance(c, HeatmapLogger)]
    assert callback.explainer.window == 8
    train(cfg)
    epochs = sorted(p.name for p in (tmp_path / "heatmaps" / "val").iterdir())
    assert epochs == ["epoch001"]  # epochs 2 of 3 only (every 2nd, counted from 1)
    assert len(list((tmp_path / "heatmaps" / "val" / "epoch001").glob("*.png"))) >= 2


def test_explainer_none_adds_no_callback(tmp_path: Path):
    cfg = compose_config("train", tiny_overrides(tmp_path, tmp_path), output_dir=str(tmp_path))
    assert not any(isinstance(c, HeatmapLogger) for c in instantiate_callbacks(cfg.callbacks))


class FakeModule:
    def __init__(self) -> None:
        self.gathered_stages: list[str] = []

    def gathered(self, stage: str) -> None:
        self.gathered_stages.append(stage)


@pytest.mark.parametrize(
    ("rank_zero", "sanity", "epoch"), [(False, False, 1), (True, True, 1), (True, False, 0)]
)
def test_only_rank_zero_draws_and_only_when_due(tmp_path, rank_zero, sanity, epoch):
    callback = HeatmapLogger(GradCamExplainer(), str(tmp_path), every_n_epochs=2)
    trainer = SimpleNamespace(is_global_zero=rank_zero, sanity_checking=sanity, current_epoch=epoch)
    module = FakeModule()
    callback.log_panel = lambda *args: pytest.fail("drew a panel")
    callback.on_validation_epoch_end(trainer, module)
    assert module.gathered_stages == ["val"]  # every rank joins the gather
    if not rank_zero:
        callback.on_test_epoch_end(trainer, module)
        assert module.gathered_stages == ["val", "test"]


def test_every_n_epochs_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="every_n_epochs"):
        HeatmapLogger(GradCamExplainer(), str(tmp_path), every_n_epochs=0)
