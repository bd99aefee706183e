"""CovidClassifier: fine-tuning modes (also under a real Trainer), P(COVID), loss weights,
the record it writes into checkpoints, and the speed switches (channels_last, compile)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from deepcovid.models.classifier import LOGGED_METRICS, CovidClassifier


def test_head_only_finetuning_changes_only_the_head_and_keeps_bn_stats() -> None:
    model = CovidClassifier("resnet18", pretrained=False, finetune="head")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = model.configure_optimizers()
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    for _ in range(3):
        loss = model.loss(model(batch["image"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"net.fc.weight", "net.fc.bias"}  # BatchNorm running stats untouched too
    assert not model.net.bn1.training and model.net.fc.training


def test_full_finetuning_trains_everything() -> None:
    model = CovidClassifier("squeezenet", pretrained=False, finetune="full")
    model.train()
    assert model.net.features[0].training
    assert all(p.requires_grad for p in model.parameters())


def test_prob_covid_is_softmax_of_class_one() -> None:
    model = CovidClassifier("resnet18", pretrained=False).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(images).softmax(1)[:, 1]
        assert torch.allclose(model.prob_covid(images), expected)


def test_bad_finetune_mode() -> None:
    with pytest.raises(ValueError, match="model.finetune"):
        CovidClassifier("resnet18", pretrained=False, finetune="half")


def test_loss_weights_are_not_saved_so_checkpoints_load_either_way() -> None:
    weighted = CovidClassifier("resnet18", pretrained=False)
    weighted.class_weights = torch.tensor([0.6, 3.0])
    logits, labels = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weighted.class_weights)
    assert torch.allclose(weighted.loss(logits, labels), expected)
    plain = CovidClassifier("resnet18", pretrained=False)
    plain.load_state_dict(weighted.state_dict())  # strict: no loss weights in the state
    assert "class_weights" not in weighted.state_dict()


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


def test_compile_is_in_place_and_keeps_checkpoint_names(monkeypatch) -> None:
    backends = []
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda *a, **k: backends.append(k) or compile_(*a, **k))
    model = CovidClassifier("squeezenet", pretrained=False, compile=True, compile_backend="eager")
    names = list(model.state_dict())
    model.configure_model()
    model.configure_model()  # idempotent: Lightning may call it for fit and for test
    assert model.compiled and list(model.state_dict()) == names
    assert backends == [{"backend": "eager"}]  # model.compile_backend reaches torch.compile


@pytest.mark.slow
def test_compiled_model_trains_and_computes_what_eager_computes() -> None:
    """Traced by dynamo and AOTAutograd (``aot_eager``: inductor's code generation, torch's own
    and 100 s on this 2-core machine, is left to ``model.compile_backend=inductor`` users)."""
    torch.manual_seed(0)
    model = CovidClassifier(
        "squeezenet", pretrained=False, compile=True, compile_backend="aot_eager", finetune="full"
    )
    eager = CovidClassifier("squeezenet", pretrained=False, finetune="full")
    eager.load_state_dict(model.state_dict())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model)
    assert model.compiled and hasattr(model.net, "_compiled_call_impl")
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # the compiled network was trained
    eager.load_state_dict(model.state_dict())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(images), eager.eval()(images), atol=1e-4)


def test_logits_and_scores_are_float32_under_bf16_autocast() -> None:
    model = CovidClassifier("resnet18", pretrained=False).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        exact = model.prob_covid(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model.prob_covid(images)
            assert model(images).dtype == torch.bfloat16  # the network runs in bf16
            with model.evaluation_precision():
                full = model.prob_covid(images)
    assert mixed.dtype == torch.float32 and full.dtype == torch.float32
    assert torch.equal(full, exact)  # evaluation precision: float32 whatever the autocast
    assert not torch.equal(mixed, exact)  # bf16 logits differ: why evaluation turns it off


def test_logged_metric_names_are_what_it_logs() -> None:
    assert set(LOGGED_METRICS) == {
        "train/loss", "val/loss", "val/auroc", "val/average_precision", "val/sensitivity",
        "val/specificity", "val/accuracy",
    }  # fmt: skip


def test_the_authors_batchnorm_mode_moves_the_frozen_statistics() -> None:
    model = CovidClassifier("resnet18", pretrained=False, finetune="head", frozen_batchnorm=False)
    before = model.net.bn1.running_mean.clone()
    modes = RecordModes()
    fit(model, modes)
    assert modes.backbone == [True] * 3  # train mode, as model.train() leaves it in their script
    assert not torch.equal(model.net.bn1.running_mean, before)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"net.fc.weight", "net.fc.bias"}  # still only the last layer learns
