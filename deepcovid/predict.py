"""``python -m deepcovid.predict ckpt_path=FILE inputs=PATH [heatmap=occlusion|gradcam]``.

See conf/predict.yaml and :mod:`deepcovid.prediction`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from deepcovid.prediction import predict
from deepcovid.utils.config import CONFIG_PATH


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
