"""The shortcut audit of the tested weights at the end of a test (rank 0), written next to the
evaluation (``audit/``) and logged: ``callbacks.audit.enabled=true``. See
:mod:`deepcovid.shortcuts`."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from deepcovid.models.classifier import CovidClassifier
from deepcovid.shortcuts.result import AuditResult
from deepcovid.shortcuts.run import AuditPlan, run_audit


class ShortcutAudit(L.Callback):
    """Audits the test split with the weights just tested, as ``plan`` says (the ``audit``
    config group, as ``python -m deepcovid.audit``)."""

    def __init__(self, output_dir: str | Path, plan: AuditPlan | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.plan = plan or AuditPlan()
        self.result: AuditResult | None = None

    def on_test_end(self, trainer: L.Trainer, pl_module: CovidClassifier) -> None:
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        record = pl_module.record or pl_module.make_record()
        was_training = pl_module.training
        pl_module.eval()
        self.result = run_audit(
            pl_module, record, datamodule, datamodule.tested_split, self.plan, self.output_dir,
            trainer.ckpt_path, trainer.loggers,
        )  # fmt: skip
        pl_module.train(was_training)


def shortcut_audit(
    enabled: bool = False, output_dir: str | Path = "audit", plan: AuditPlan | None = None
) -> ShortcutAudit | None:
    """A :class:`ShortcutAudit`, or None (no callback) unless ``enabled``."""
    return ShortcutAudit(output_dir, plan) if enabled else None
