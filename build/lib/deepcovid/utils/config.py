"""Where the Hydra configs live and how to compose them from Python.

``conf/`` is installed as the package ``deepcovid.conf`` (pyproject.toml), so every entry point
reads its configs through ``pkg://deepcovid.conf``, from a clone and from a wheel alike.
"""

from __future__ import annotations

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

CONFIG_MODULE = "deepcovid.conf"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"


def compose_config(
    config_name: str = "train", overrides: list[str] | None = None, output_dir: str | None = None
) -> DictConfig:
    """Compose a config as the CLI would, for tests and notebooks.

    ``output_dir`` stands in for ``${hydra:runtime.output_dir}``, which only exists in a CLI run.
    """
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [])
    if output_dir is not None:
        cfg.paths.output_dir = str(output_dir)
    return cfg
