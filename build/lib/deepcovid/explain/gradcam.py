"""Grad-CAM (Selvaraju et al., 2017): class-discriminative maps from the last conv block.

The map is ``ReLU(Σ_k α_k A_k)`` where ``A`` is the target layer's output and ``α_k`` the
spatial mean of the gradient of the explained score (by default the log-odds of COVID) with
respect to ``A_k``; it is upsampled to the input size and scaled to [0, 1] per image. One
forward and one backward pass per batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepcovid.explain.scoring import score_module


def grad_cam(
    net: nn.Module, target_layer: str, images: torch.Tensor, score: str = "logit"
) -> torch.Tensor:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] of ``net``'s ``score`` (``logit``: the log-odds of
    COVID, ``prob``: P(COVID)) at the module named ``target_layer`` (e.g.
    ``Backbone.target_layer``). Works under inference mode."""
    if images.dim() != 4:
        raise ValueError(f"images have shape {tuple(images.shape)}; expected (N, C, H, W)")
    try:
        layer = net.get_submodule(target_layer)
    except AttributeError as error:
        raise ValueError(
            f"target_layer={target_layer!r} is not a module of {type(net).__name__}: use the "
            "model's target_layer (the dotted name of its last conv block)"
        ) from error
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if not output.requires_grad:  # frozen backbone: track gradients from here on
            output.requires_grad_(True)
        captured.append(output)
        return output.clone()  # later in-place ops (ReLU) must not touch the captured map

    handle = layer.register_forward_hook(keep)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            scores = score_module(net, score)(images.clone())
            (gradients,) = torch.autograd.grad(scores.sum(), captured[0])
    finally:
        handle.remove()
    activations = captured[0].detach()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp(min=torch.finfo(cam.dtype).tiny)
    return (cam / peak[:, None, None]).clamp(0, 1)
