"""The real configs compose for every option of every group."""

import subprocess
import sys
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from deepcovid.utils.config import compose_config
from tests.conftest import CONFIG_DIR

GROUP_OPTIONS = {
    group: sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))
    for group in (
        "model",
        "trainer",
        "logger",
        "callbacks",
        "debug",
        "experiment",
        "data",
        "hparams_search",
    )
}


@pytest.mark.parametrize(
    "override",
    [
        f"{group}={option}"
        for group, options in GROUP_OPTIONS.items()
        for option in options
        if option != "base"
    ],
)
def test_every_option_composes_and_resolves(override: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [override], output_dir=str(tmp_path))
    OmegaConf.resolve(cfg)  # no missing or broken interpolation
    assert cfg.data._target_.endswith("XrayDataModule")
    assert cfg.model._target_.endswith("CovidClassifier")


@pytest.mark.parametrize("model", ["resnet18", "resnet50", "squeezenet", "densenet121", "timm"])
def test_model_configs_instantiate(model: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"model={model}", "model.pretrained=false"], str(tmp_path))
    classifier = hydra.utils.instantiate(cfg.model)
    assert classifier.hparams.backbone == cfg.model.backbone
    optimizer = classifier.configure_optimizers()
    assert optimizer.defaults["lr"] == 1e-4  # the paper's Adam learning rate


def test_paper_defaults(tmp_path: Path) -> None:
    cfg = compose_config("train", [], str(tmp_path))
    assert cfg.data.image_size == 224 and cfg.data.batch_size == 20
    assert cfg.model.finetune == "head" and cfg.model.pretrained is True
    assert cfg.trainer.max_epochs == 100 and cfg.model.threshold == 0.2


def test_trainer_and_logger_instantiate(tmp_path: Path) -> None:
    from deepcovid.utils.instantiate import instantiate_loggers

    cfg = compose_config("train", ["trainer=cpu", "logger=tensorboard"], str(tmp_path))
    trainer = hydra.utils.instantiate(cfg.trainer, logger=instantiate_loggers(cfg.logger))
    assert trainer.max_epochs == 100 and type(trainer.logger).__name__ == "TensorBoardLogger"
    assert instantiate_loggers(compose_config("train", ["logger=none"], str(tmp_path)).logger) == []


def test_cli_help_and_cfg_job() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deepcovid.train", "model=densenet121", "--cfg", "job"],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = OmegaConf.create(result.stdout)
    assert printed.model.backbone == "densenet121"
    assert "hydra" not in printed
