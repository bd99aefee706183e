import pytest
import torch

from deepcovid.models.classifier import CovidClassifier


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
