"""``python -m deepcovid.train``: compose the config, train, test. See conf/train.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepcovid.training import optimized_metric, train
from deepcovid.utils.config import CONFIG_PATH


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return optimized_metric(cfg, train(cfg))


if __name__ == "__main__":
    main()
