"""``python -m deepcovid.lungs.segment inputs=PATH``: lung masks for chest X-rays.

See conf/lungs_segment.yaml and :mod:`deepcovid.lungs.segmentation`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepcovid.lungs.segmentation import segment
from deepcovid.utils.config import CONFIG_PATH


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="lungs_segment")
def main(cfg: DictConfig) -> None:
    segment(cfg)


if __name__ == "__main__":
    main()
