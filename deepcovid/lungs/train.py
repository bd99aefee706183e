"""``python -m deepcovid.lungs.train``: train and evaluate the lung segmenter.

See conf/lungs_train.yaml and :mod:`deepcovid.lungs.training`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepcovid.lungs.training import train_segmenter
from deepcovid.utils.config import CONFIG_PATH


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="lungs_train")
def main(cfg: DictConfig) -> None:
    train_segmenter(cfg)


if __name__ == "__main__":
    main()
