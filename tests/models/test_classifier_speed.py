"""CovidClassifier under a real Trainer: fine-tuning modes and the speed switches
(channels_last, torch.compile)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from deepcovid.models.classifier import CovidClassifier


def batches(count: int = 3, size: int = 32) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    items = [
        {
            "image": torch.randn(4, 3, size, size, generator=generator),
            "label": torch.tensor([0, 1, 0, 1]),
            "index": torch.arange(4) + 4 * i,
        }
        for i in range(count)
    ]
    return DataLoader(items, batch_size=None)


class RecordModes(L.Callback):
    """The training flags of the backbone's BatchNorm layers and of the head, per step."""

    def __init__(self) -> None:
        self.backbone: list[bool] = []
        self.head: list[bool] = []

    def on_train_batch_start(self, trainer, model, batch, batch_idx) -> None:
        norms = [m for m in model.net.modules() if isinstance(m, nn.BatchNorm2d)]
        self.backbone.append(any(m.training for m in norms))
        self.head.append(model.net.get_submodule(model.head_name).training)


def fit(model: CovidClassifier, *callbacks: L.Callback) -> None:
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(model, train_dataloaders=batches())


@pytest.mark.parametrize("finetune", ["head", "full"])
def test_frozen_backbone_stays_in_eval_mode_during_fit(finetune: str) -> None:
    model = CovidClassifier("resnet18", pretrained=False, finetune=finetune)
    before = model.net.bn1.running_mean.clone()
    modes = RecordModes()
    fit(model, modes)
    assert modes.head == [True] * 3
    if finetune == "head":  # the paper's protocol: BatchNorm statistics untouched
        assert modes.backbone == [False] * 3
        assert torch.equal(model.net.bn1.running_mean, before)
    else:
        assert modes.backbone == [True] * 3
        assert not torch.equal(model.net.bn1.running_mean, before)


def test_channels_last_gives_the_same_logits() -> None:
    torch.manual_seed(0)
    plain = CovidClassifier("resnet18", pretrained=False).eval()
    fast = CovidClassifier("resnet18", pretrained=False, channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    assert fast.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 64, 64)
    assert torch.allclose(fast(images), plain(images), atol=1e-5)


def test_compile_is_in_place_and_keeps_checkpoint_names() -> None:
    model = CovidClassifier("squeezenet", pretrained=False, compile=True)
    names = list(model.state_dict())
    model.configure_model()
    model.configure_model()  # idempotent: Lightning may call it for fit and for test
    assert model.compiled and list(model.state_dict()) == names


@pytest.mark.slow
def test_compiled_model_trains() -> None:
    model = CovidClassifier("squeezenet", pretrained=False, compile=True, finetune="full")
    fit(model)
    assert model.compiled
