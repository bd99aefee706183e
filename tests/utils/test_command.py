"""The start-up the Hydra commands share: the loggers are finished however a command ends."""

from pathlib import Path
from unittest.mock import Mock

import pytest
from hydra.errors import InstantiationException
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf

from deepcovid.train import train
from deepcovid.utils import command
from deepcovid.utils.config import compose_config
from tests.conftest import tiny_overrides


@pytest.fixture
def wandb_run(monkeypatch: pytest.MonkeyPatch) -> Mock:
    """A started W&B logger, handed to every command instead of cfg.logger's."""
    logger = Mock(spec=WandbLogger)
    logger._experiment = logger.experiment
    monkeypatch.setattr(command, "instantiate_loggers", lambda group: [logger])
    return logger


def test_the_loggers_are_finished_when_the_block_fails(wandb_run: Mock) -> None:
    with pytest.raises(RuntimeError), command.command_loggers(OmegaConf.create({})) as loggers:
        assert loggers == [wandb_run]
        raise RuntimeError("the command failed")
    wandb_run.experiment.finish.assert_called_once_with()


def test_train_finishes_its_run_when_the_trainer_cannot_be_built(
    wandb_run: Mock, covidx5k_shared: Path, tmp_path: Path
) -> None:
    overrides = tiny_overrides(covidx5k_shared, tmp_path, "+trainer.no_such_argument=1")
    with pytest.raises(InstantiationException, match="no_such_argument"):
        train(compose_config("train", overrides, str(tmp_path)))
    wandb_run.experiment.finish.assert_called_once_with()
