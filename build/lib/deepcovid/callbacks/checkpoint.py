"""The best checkpoint by the monitored metric, with ties broken by val loss.

Lightning's ``ModelCheckpoint`` keeps the earliest of equal scores. Validation AUROC ties often
on small val splits (it moves in steps of 1 / (n_COVID · n_non-COVID)); the earliest epoch is
then no better a choice than any other, while the lower validation loss is.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint


def monitor_mode(monitor: str) -> str:
    """``min`` for a loss, ``max`` for every other monitored metric (AUROC, AP, …)."""
    return "min" if monitor.rsplit("/", 1)[-1].endswith("loss") else "max"


class BestCheckpoint(ModelCheckpoint):
    """Keeps the single best checkpoint by ``monitor`` (mode from its name); a tie with the
    best so far is won by the lower ``tie_breaker`` (default ``val/loss``)."""

    def __init__(self, monitor: str, tie_breaker: str = "val/loss", **kwargs: Any) -> None:
        super().__init__(monitor=monitor, mode=monitor_mode(monitor), save_top_k=1, **kwargs)
        self.tie_breaker = tie_breaker
        self.tie_breaker_value: float | None = None

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
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
