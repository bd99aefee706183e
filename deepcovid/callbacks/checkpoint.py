"""The tested checkpoint: the best by the monitored metric (ties broken by val loss), or the
last epoch's (``select="last"``: a fixed epoch budget, its val predictions untouched by the
choice).

Lightning's ``ModelCheckpoint`` keeps the earliest of equal scores. Validation AUROC ties often
on small val splits (it moves in steps of 1 / (n_COVID · n_non-COVID)); the earliest epoch is
then no better a choice than any other, while the lower validation loss is. A checkpoint chosen
on val is optimistic on val: cross-validation's out-of-fold AUROC needs ``select="last"``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from deepcovid.utils.choices import checked_choice, choices


def monitor_mode(monitor: str) -> str:
    """``min`` for a loss, ``max`` for every other monitored metric (AUROC, AP, …)."""
    return "min" if monitor.rsplit("/", 1)[-1].endswith("loss") else "max"


SELECTIONS = ("best", "last")  # callbacks.model_checkpoint.select (conf/callbacks/default.yaml)
Selection = choices("Selection", SELECTIONS)


class BestCheckpoint(ModelCheckpoint):
    """Keeps the single best checkpoint by ``monitor`` (mode from its name); a tie with the
    best so far is won by the lower ``tie_breaker`` (default ``val/loss``). With
    ``select="last"`` each validated epoch replaces the one kept: the last epoch's is tested."""

    def __init__(
        self, monitor: str, tie_breaker: str = "val/loss", select: str = "best", **kwargs: Any
    ) -> None:
        select = checked_choice("callbacks.model_checkpoint.select", select, Selection)
        super().__init__(monitor=monitor, mode=monitor_mode(monitor), save_top_k=1, **kwargs)
        self.tie_breaker = tie_breaker
        self.tie_breaker_value: float | None = None
        self.select = select

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        if self.select == "last" and current is not None:
            return True
        breaker = trainer.callback_metrics.get(self.tie_breaker)
        if current is not None and self.best_k_models and breaker is not None:
            best = self.best_k_models[self.kth_best_model_path]
            if self.tie_breaker_value is not None and torch.equal(current.cpu(), best.cpu()):
                better = bool(breaker < self.tie_breaker_value)
                return trainer.strategy.reduce_boolean_decision(better)
        return super().check_monitor_top_k(trainer, current)

    def _update_best_and_save(
        self, current: torch.Tensor, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]
    ) -> None:
        breaker = monitor_candidates.get(self.tie_breaker)
        self.tie_breaker_value = None if breaker is None else float(breaker)
        super()._update_best_and_save(current, trainer, monitor_candidates)

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"tie_breaker_value": self.tie_breaker_value}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.tie_breaker_value = state_dict.get("tie_breaker_value")
