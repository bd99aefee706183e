"""``python -m deepcovid.evaluate ckpt_path=FILE data.root=DIR``: see conf/eval.yaml."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepcovid.evaluation import evaluate
from deepcovid.utils.config import CONFIG_PATH


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
