"""Captum's occlusion as the reference, and the models the occlusion tests run it on."""

import torch
import torch.nn.functional as F
from captum.attr import Occlusion
from torch import nn

from deepcovid.explain.scoring import ProbCovid
from deepcovid.models.backbones import create_backbone

TOLERANCE = 1e-5


def captum(model, x, window, stride, baseline=0.0) -> torch.Tensor:
    window = (window, window) if isinstance(window, int) else window
    stride = (stride, stride) if isinstance(stride, int) else stride
    channels = x.shape[1]
    return Occlusion(model).attribute(
        x,
        sliding_window_shapes=(channels, *window),
        strides=(channels, *stride),
        baselines=baseline,
        perturbations_per_eval=8,
    )


class EveryOp(nn.Module):
    """Strided/dilated/grouped convs, eval BatchNorm, ceil-mode max pooling, padded average
    pooling, residual add, cat, scalar mul/sub, dropout, SiLU and an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 5, stride=2, padding=2)
        self.norm = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
        self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.branch = nn.Conv2d(8, 4, 1)
        self.smooth = nn.AvgPool2d(3, stride=1, padding=1)
        self.halve = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(12, 1)
        with torch.no_grad():
            self.norm.running_mean.normal_()
            self.norm.running_var.uniform_(0.5, 2.0)
            self.norm.weight.normal_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.relu(self.norm(self.stem(x))))
        z = torch.relu(self.dilated(y)) + y
        w = torch.cat([z, self.branch(z) * 0.5], dim=1)
        v = self.drop(F.silu(self.halve(self.smooth(w)) - 0.1))
        return torch.sigmoid(self.head(v.mean((2, 3))))[:, 0]


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return EveryOp().eval()


def paper_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return ProbCovid(create_backbone(name, pretrained=False).net).eval()
