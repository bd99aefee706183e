"""The shortcut audit of the tested weights at the end of a test (rank 0), written next to the
evaluation (``audit/``) and logged: ``callbacks.audit.enabled=true``. See
:mod:`deepcovid.shortcuts`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import lightning as L

from deepcovid.explain.explainers import Explainer
from deepcovid.models.classifier import CovidClassifier
from deepcovid.shortcuts.masks import AuditMasks
from deepcovid.shortcuts.result import AuditResult, AuditSettings
from deepcovid.shortcuts.run import run_audit


class ShortcutAudit(L.Callback):
    """Audits the test split with the weights just tested."""

    def __init__(
        self,
        output_dir: str | Path,
        explainers: Mapping[str, Explainer],
        v7: bool = True,
        segmenter: bool = True,
        settings: AuditSettings | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.explainers = {name: e for name, e in explainers.items() if e is not None}
        self.v7, self.segmenter = v7, segmenter
        self.settings = settings or AuditSettings()
        self.result: AuditResult | None = None

    def on_test_end(self, trainer: L.Trainer, pl_module: CovidClassifier) -> None:
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        record = pl_module.record or pl_module.make_record()
        masks = AuditMasks(
            datamodule.eval_transform, datamodule.lung_masks, self.v7, self.segmenter,
            str(pl_module.device), datamodule.boxes,
        )  # fmt: skip
        was_training = pl_module.training
        pl_module.eval()
        self.result = run_audit(
            pl_module, record, datamodule, datamodule.tested_split, masks, self.explainers,
            self.settings, self.output_dir, trainer.ckpt_path, trainer.loggers,
        )  # fmt: skip
        pl_module.train(was_training)


def shortcut_audit(enabled: bool = False, **settings) -> ShortcutAudit | None:
    """A :class:`ShortcutAudit`, or None (no callback) unless ``enabled``."""
    return ShortcutAudit(**settings) if enabled else None
