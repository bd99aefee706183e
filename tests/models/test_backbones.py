from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from deepcovid.models.backbones import (
    TORCHVISION_BACKBONES,
    UnknownBackboneError,
    create_backbone,
    freeze_all_but_head,
)


@pytest.mark.parametrize("name", sorted(TORCHVISION_BACKBONES))
def test_paper_backbones_have_two_class_heads(name: str) -> None:
    backbone = create_backbone(name, pretrained=False)
    maps: list[torch.Tensor] = []
    layer = backbone.net.get_submodule(backbone.target_layer)
    layer.register_forward_hook(lambda module, inputs, output: maps.append(output))
    out = backbone.net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2)
    # Grad-CAM's layer: the last spatial feature map, before pooling
    assert len(maps) == 1 and maps[0].ndim == 4 and maps[0].shape[0] == 2
    freeze_all_but_head(backbone)
    trainable = {n for n, p in backbone.net.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(backbone.head + ".") for n in trainable)


def test_timm_name_and_unknown_name() -> None:
    backbone = create_backbone("resnet10t", pretrained=False)
    assert backbone.net.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 2)
    with pytest.raises(UnknownBackboneError, match="resnet18.*timm"):
        create_backbone("resnet-eighteen", pretrained=False)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_torchvision_weights_are_loaded(tmp_path: Path, suffix: str) -> None:
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, path)
    backbone = create_backbone("resnet18", pretrained=True, weights_path=str(path))
    loaded = backbone.net.state_dict()
    assert torch.equal(loaded["conv1.weight"], state["conv1.weight"])
    assert torch.equal(loaded["layer4.1.bn2.running_var"], state["layer4.1.bn2.running_var"])
    assert loaded["fc.weight"].shape == (2, 512)  # head replaced after loading


def test_local_timm_weights_are_loaded(tmp_path: Path) -> None:
    import timm

    reference = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "resnet10t.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    backbone = create_backbone("resnet10t", pretrained=True, weights_path=str(path))
    assert torch.equal(
        backbone.net.state_dict()["conv1.0.weight"], reference.state_dict()["conv1.0.weight"]
    )


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="weights_path"):
        create_backbone("resnet18", weights_path=str(tmp_path / "none.pth"))


def test_offline_hub_failure_explains_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    def no_network(*args, **kwargs) -> nn.Module:
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.models, "get_model", no_network)
    with pytest.raises(RuntimeError, match="model.weights_path=FILE"):
        create_backbone("resnet18", pretrained=True)
