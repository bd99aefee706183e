"""``python -m deepcovid.export ckpt_path=FILE format=safetensors|onnx|torchscript``: write the
model's weights plus a JSON of its preprocessing and class names. See conf/export.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from deepcovid.exporting import export
from deepcovid.utils.config import CONFIG_PATH


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    export(
        cfg.ckpt_path,
        cfg.format,
        cfg.output_dir,
        cfg.name,
        OmegaConf.to_container(cfg.preprocessing),
        cfg.allow_pickle,
    )


if __name__ == "__main__":
    main()
