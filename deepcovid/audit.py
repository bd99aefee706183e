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
from omegaconf import DictConfig

from deepcovid.data.recorded import datamodule_for
from deepcovid.models.checkpoints import load_classifier
from deepcovid.shortcuts.result import AuditResult
from deepcovid.shortcuts.run import AuditPlan, run_audit
from deepcovid.utils.command import command_loggers, start
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.system import resolve_device

log = logging.getLogger(__name__)


def audit(cfg: DictConfig) -> AuditResult:
    """Audit ``cfg.ckpt_path`` on ``cfg.split`` as ``cfg.audit`` says; write
    ``<output_dir>/audit/``."""
    start(cfg)
    model = load_classifier(cfg.ckpt_path).to(resolve_device(cfg.device))
    datamodule = datamodule_for(cfg.data, model.record, cfg.ckpt_path, cfg.split, cfg.external)
    plan: AuditPlan = hydra.utils.instantiate(cfg.audit)
    with command_loggers(cfg) as loggers:
        return run_audit(
            model, model.record, datamodule, cfg.split, plan,
            Path(cfg.paths.output_dir) / "audit", str(cfg.ckpt_path), loggers,
        )  # fmt: skip


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="audit")
def main(cfg: DictConfig) -> None:
    audit(cfg)


if __name__ == "__main__":
    import deepcovid.conf  # noqa: F401  (registers the schemas, also for --config-path DIR)

    main()
