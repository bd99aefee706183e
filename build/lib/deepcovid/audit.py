"""``python -m deepcovid.audit ckpt_path=FILE data.root=DIR``: does the model look at the
lungs? See conf/audit.yaml and :mod:`deepcovid.shortcuts`.

On the chosen split (the training run's, verified, or another site's with ``external=true``):
each image's lung mask (given, V7 Labs, or the shipped segmenter's); the share of each
heatmap's positive attribution inside the lungs and whether its peak is there; P(COVID) with
the lungs removed and with the lungs only; a probe of the features for the image's source. The
findings, in words, head ``audit/report.md``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from deepcovid.data.recorded import datamodule_for
from deepcovid.models.checkpoints import load_classifier
from deepcovid.shortcuts.masks import AuditMasks
from deepcovid.shortcuts.result import AuditResult
from deepcovid.shortcuts.run import run_audit
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.console import print_config_tree, silence_known_warnings
from deepcovid.utils.instantiate import instantiate_loggers
from deepcovid.utils.system import resolve_device
from deepcovid.utils.tracking import finish_loggers

log = logging.getLogger(__name__)


def audit(cfg: DictConfig) -> AuditResult:
    """Audit ``cfg.ckpt_path`` on ``cfg.split``; write ``<output_dir>/audit/``."""
    silence_known_warnings()
    if cfg.get("print_config"):
        print_config_tree(cfg)
    L.seed_everything(cfg.seed, workers=True)
    device = resolve_device(cfg.device)
    model = load_classifier(cfg.ckpt_path).to(device)
    record = model.record
    datamodule = datamodule_for(cfg.data, record, cfg.ckpt_path, cfg.split, cfg.external)
    masks = AuditMasks(
        datamodule.eval_transform, datamodule.lung_masks, cfg.masks.v7, cfg.masks.segmenter,
        str(device), datamodule.boxes,
    )  # fmt: skip
    explainers = {
        name: hydra.utils.instantiate(settings)
        for name, settings in cfg.explainers.items()
        if settings is not None
    }
    loggers = instantiate_loggers(cfg.get("logger"))
    try:
        return run_audit(
            model, record, datamodule, cfg.split, masks, explainers,
            hydra.utils.instantiate(cfg.audit), Path(cfg.paths.output_dir) / "audit",
            str(cfg.ckpt_path), loggers,
        )  # fmt: skip
    finally:
        finish_loggers(loggers)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="audit")
def main(cfg: DictConfig) -> None:
    audit(cfg)


if __name__ == "__main__":
    main()
