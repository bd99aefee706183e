"""Keep the last good state when a run stops early: a non-finite loss or gradient, SIGTERM,
or any other failure during fit.

:class:`StopOnNonFiniteLoss` checks before the backward pass (loss) and before the optimizer
step (gradients), so the weights at that moment are still the last good ones, and
:class:`CheckpointOnInterrupt` saves them when the error propagates. SIGTERM (what clusters send
before preemption) is turned by Lightning into a ``SIGTERMException`` at the end of the batch in
flight, which the same callback saves on.

Lightning's ``OnExceptionCheckpoint`` is not used: being a ``Checkpoint``, it makes
``fit(ckpt_path=None)`` resume silently from any ``last.ckpt`` in the folder, and
``ckpt_path=last`` pick its mid-epoch file when newer, which Lightning itself calls unreliable
for a non-resumable DataLoader. Here ``ckpt_path=last`` always means the epoch-end
``last.ckpt`` (an exact continuation); the interrupt checkpoint is used only when named.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn


class NonFiniteLossError(RuntimeError):
    """The training loss or a gradient became NaN or infinite; the message names the step."""


class CheckpointOnInterrupt(L.Callback):
    """Save the state of a fit that stops with an exception (SIGTERM, non-finite loss, crash)
    to ``dirpath/filename.ckpt``; resume from it with ``ckpt_path=FILE``."""

    def __init__(self, dirpath: str, filename: str = "interrupted") -> None:
        self.path = Path(dirpath) / f"{filename}.ckpt"

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.path)


def exception_checkpoint(trainer: L.Trainer) -> Path | None:
    """Where :class:`CheckpointOnInterrupt` saves the state on failure, if it is configured."""
    for callback in trainer.callbacks:
        if isinstance(callback, CheckpointOnInterrupt):
            return callback.path
    return None


def gradients_finite(module: torch.nn.Module) -> bool:
    """Whether every gradient is finite, with one fused norm and a single device sync (a
    check per parameter waited on the GPU once per tensor: half the training speed on an H200).
    """
    gradients = [p.grad for p in module.parameters() if p.grad is not None]
    if not gradients:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(gradients)))


def first_nonfinite_gradient(module: torch.nn.Module) -> str | None:
    """Name of the first parameter whose gradient holds NaN or inf, else None."""
    for name, parameter in module.named_parameters():
        if parameter.grad is not None and not torch.isfinite(parameter.grad).all():
            return name
    return None


class StopOnNonFiniteLoss(L.Callback):
    """Raise :class:`NonFiniteLossError` naming the step when the loss or a gradient is not
    finite on any rank (all ranks stop together). Gradient checks are skipped under fp16 AMP,
    whose gradient scaler expects and skips inf steps itself."""

    def __init__(self, check_gradients: bool = True) -> None:
        self.check_gradients = check_gradients

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            self.stop(trainer, f"the training loss is {loss.detach().float().mean().item()}")

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self.check_gradients or getattr(trainer.precision_plugin, "scaler", None):
            return
        # The fused check runs every step; naming the parameter only once something is wrong.
        finite = gradients_finite(pl_module)
        name = None if finite else first_nonfinite_gradient(pl_module)
        if trainer.strategy.reduce_boolean_decision(not finite, all=False):
            self.stop(
                trainer, f"the gradient of {name or 'a parameter (on another rank)'} is not finite"
            )

    @staticmethod
    def stop(trainer: L.Trainer, what: str) -> None:
        checkpoint = exception_checkpoint(trainer)
        saved = (
            f"The weights before this step are saved to {checkpoint}."
            if checkpoint
            else "Add callbacks.checkpoint_on_interrupt to keep the last good weights."
        )
        raise NonFiniteLossError(
            f"{what} at global step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}): stopping before the weights are "
            f"corrupted. {saved} Fix: lower model.optimizer.lr, set trainer.gradient_clip_val, "
            "train in trainer.precision=32-true, or check this batch's images."
        )
