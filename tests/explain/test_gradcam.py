"""Grad-CAM: one map per image in [0, 1], for every backbone, where the evidence is."""

import pytest
import torch
from torch import nn

from deepcovid.explain import grad_cam
from deepcovid.models.backbones import create_backbone, freeze_all_but_head


@pytest.mark.parametrize(
    "name", ["resnet18", "resnet50", "squeezenet", "densenet121", "efficientnet_b0"]
)
def test_shape_and_range_for_every_backbone(name):
    torch.manual_seed(0)
    backbone = create_backbone(name, pretrained=False)
    freeze_all_but_head(backbone)  # the paper's setting: no parameter gradients upstream
    net = backbone.net.eval()
    images = torch.randn(3, 3, 64, 48)
    with torch.inference_mode():  # as in a validation loop
        maps = grad_cam(net, backbone.target_layer, images)
    assert maps.shape == (3, 64, 48)
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert not net.get_submodule(backbone.target_layer)._forward_hooks  # hook removed


class BrightSpot(nn.Module):
    """COVID logit = mean brightness of a conv feature map: the evidence is where it is bright."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.features[0].weight.fill_(0.1)
            self.features[0].bias.zero_()
            self.head.weight.copy_(torch.tensor([[-1.0] * 4, [1.0] * 4]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def test_peaks_where_the_evidence_is():
    images = torch.zeros(2, 3, 32, 32)
    images[0, :, 4:10, 20:28] = 1.0
    images[1, :, 22:30, 2:8] = 1.0
    maps = grad_cam(BrightSpot().eval(), "features", images)
    for cam, (rows, cols) in zip(
        maps, [(slice(4, 10), slice(20, 28)), (slice(22, 30), slice(2, 8))], strict=True
    ):
        assert cam.max() == 1.0
        assert cam[rows, cols].mean() > 0.5 and cam.mean() < 0.2


def test_works_when_the_backbone_trains_too():
    net = BrightSpot().train(False)
    images = torch.rand(1, 3, 16, 16)
    maps = grad_cam(net, "features", images)  # parameters require grad: no error, no grads kept
    assert maps.shape == (1, 16, 16)
    assert all(p.grad is None for p in net.parameters())


def test_unknown_layer_is_refused():
    with pytest.raises(ValueError, match="target_layer"):
        grad_cam(BrightSpot(), "layer9", torch.rand(1, 3, 8, 8))
