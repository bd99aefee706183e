"""``python -m deepcovid.export ckpt_path=FILE format=safetensors|onnx|torchscript``: write the
model's weights plus a JSON of its record (preprocessing, class names, thresholds, data
fingerprint, provenance) read from the checkpoint, ``NAME.<ext>.json``: one per format, so
formats share a folder; an existing export is kept unless ``overwrite=true``. See
conf/export.yaml."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from deepcovid.models.checkpoints import load_classifier
from deepcovid.models.exported import (
    SUFFIXES,
    WRITERS,
    metadata_path,
    write_export,
)
from deepcovid.utils.config import CONFIG_PATH

log = logging.getLogger(__name__)


def export(
    ckpt_path: str | Path,
    fmt: str = "safetensors",
    output_dir: str | Path = ".",
    name: str = "model",
    allow_pickle: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``output_dir/NAME.<ext>`` and ``output_dir/NAME.<ext>.json``; return the weights
    path. An existing export of that name and format is refused unless ``overwrite``."""
    if fmt not in WRITERS:
        raise ValueError(f"format={fmt!r}; choose one of {list(WRITERS)}")
    weights = Path(output_dir) / f"{name}{SUFFIXES[fmt]}"
    model = load_classifier(ckpt_path, allow_pickle=allow_pickle)
    write_export(model.net, model.record, fmt, weights, str(ckpt_path), overwrite)
    log.info("exported %s as %s to %s (+ %s)", ckpt_path, fmt, weights, metadata_path(weights).name)
    return weights


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    export(cfg.ckpt_path, cfg.format, cfg.output_dir, cfg.name, cfg.allow_pickle, cfg.overwrite)


if __name__ == "__main__":
    main()
