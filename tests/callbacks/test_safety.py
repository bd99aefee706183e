import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepcovid.callbacks.safety import (
    CheckpointOnInterrupt,
    NonFiniteLossError,
    StopOnNonFiniteLoss,
)
from deepcovid.models.checkpoints import AtomicCheckpointIO


class Toy(L.LightningModule):
    """A linear model whose loss turns NaN (or whose gradient turns inf) at one step."""

    def __init__(self, fault_step: int | None = None, fault: str = "loss") -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.fault_step = fault_step
        self.fault = fault
        self.sigterm_step: int | None = None

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.layer(x).pow(2).mean()
        if self.global_step == self.sigterm_step:
            os.kill(os.getpid(), signal.SIGTERM)
        if self.global_step == self.fault_step:
            if self.fault == "loss":
                return loss * torch.tensor(float("nan"))
            self.layer.weight.register_hook(lambda grad: grad * float("inf"))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(model: Toy, root: Path, max_epochs: int = 1) -> L.Trainer:
    trainer = L.Trainer(
        default_root_dir=root,
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[StopOnNonFiniteLoss(), CheckpointOnInterrupt(str(root))],
        plugins=[AtomicCheckpointIO()],
    )
    data = DataLoader(TensorDataset(torch.randn(40, 4)), batch_size=4)
    trainer.fit(model, data)
    return trainer


@pytest.mark.parametrize(("fault", "what"), [("loss", "training loss is nan"), ("grad", "layer")])
def test_nonfinite_stops_at_the_step_and_keeps_the_last_good_weights(
    tmp_path: Path, fault: str, what: str
) -> None:
    model = Toy(fault_step=3, fault=fault)
    with pytest.raises(NonFiniteLossError, match="global step 3 \\(epoch 0, batch 3\\)") as error:
        fit(model, tmp_path)
    assert what in str(error.value) and "interrupted.ckpt" in str(error.value)
    saved = torch.load(tmp_path / "interrupted.ckpt", weights_only=True)
    assert saved["global_step"] == 3
    weights = saved["state_dict"]["layer.weight"]
    assert torch.isfinite(weights).all()
    assert torch.equal(weights, model.layer.weight.detach())  # the step never happened


def test_training_without_faults_is_untouched(tmp_path: Path) -> None:
    trainer = fit(Toy(), tmp_path)
    assert trainer.global_step == 10
    assert not (tmp_path / "interrupted.ckpt").exists()


def test_sigterm_saves_a_checkpoint_then_exits(tmp_path: Path) -> None:
    model = Toy()
    model.sigterm_step = 4
    with pytest.raises(SIGTERMException):
        fit(model, tmp_path)
    saved = torch.load(tmp_path / "interrupted.ckpt", weights_only=True)
    assert saved["global_step"] == 5  # the batch in flight finished, then the run stopped


def test_atomic_checkpoint_io_never_truncates_a_good_file(tmp_path: Path, monkeypatch) -> None:
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)
    good = target.read_bytes()

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkp")  # partial write, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left
    monkeypatch.undo()
    io.save_checkpoint({"step": 3}, target)
    assert torch.load(target, weights_only=True) == {"step": 3}
