"""Where the Hydra configs live and how to compose them from Python.

``conf/`` is installed as the package ``deepcovid.conf`` (pyproject.toml), so every entry point
reads its configs through ``pkg://deepcovid.conf``, from a clone and from a wheel alike.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

CONFIG_MODULE = "deepcovid.conf"
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"


def manifest_file(root: str | Path, manifest: str | Path | None = "auto") -> Path | None:
    """The manifest ``data.manifest`` names: a path; ``auto``: ``ROOT/manifest.csv`` when it
    exists; None / ``none`` / ``null``: none (the class folders are scanned)."""
    if manifest is None or str(manifest) in ("none", "null"):
        return None
    if str(manifest) == "auto":
        candidate = Path(root) / "manifest.csv"
        return candidate if candidate.is_file() else None
    return Path(manifest)


def manifest_sources(root: str, manifest: str | None = "auto") -> str:
    """The sources of a data set's manifest as a sweep's choices (``'a','b'``): the resolver
    ``${deepcovid_sources:ROOT,MANIFEST}`` behind ``experiment=leave_one_source_out``."""
    path = manifest_file(root, manifest)
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"{path or Path(root) / 'manifest.csv'} (data.manifest={manifest}): "
            "leave-one-source-out needs a manifest with a source column; set data.manifest"
        )
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "source" not in frame:
        raise ValueError(f"{path}: has no source column, so no source can be left out")
    sources = sorted({s for s in frame["source"] if s.strip()})
    return ",".join("'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'" for s in sources)


OmegaConf.register_new_resolver("deepcovid_sources", manifest_sources, replace=True)


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
