"""Where the Hydra configs live and how to compose them from Python."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def compose_config(
    config_name: str = "train", overrides: list[str] | None = None, output_dir: str | None = None
) -> DictConfig:
    """Compose a config as the CLI would, for tests and notebooks.

    ``output_dir`` stands in for ``${hydra:runtime.output_dir}``, which only exists in a CLI run.
    """
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [])
    if output_dir is not None:
        cfg.paths.output_dir = str(output_dir)
    return cfg
