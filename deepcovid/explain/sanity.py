"""Sanity checks of heatmap methods (Adebayo et al. 2018, "Sanity checks for saliency maps").

Model-parameter randomisation: the head is re-initialised, then, cascading from the top, a
growing share of the network's weighted layers; each explainer's maps of the same images are
recomputed and compared with the original maps (Spearman rank correlation and SSIM, per image,
averaged). A method whose maps stay close when the learned weights are destroyed shows the
image, not the model, and is flagged.

Deletion (faithfulness): P(COVID) as the top-k % attributed pixels are set to the baseline,
against removing the same number of random pixels; the area between the two curves (the mean
extra drop in P(COVID) over the fractions) is positive when the map finds pixels that matter.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from deepcovid.explain.explainers import Explainer
from deepcovid.explain.scoring import score_module

FLAG_WORDS = "its maps barely change when the learned weights are destroyed: they show the image, not the model"  # noqa: E501


@dataclass(frozen=True)
class SanitySettings:
    """The checks' knobs (``conf/audit/default.yaml``: ``audit.sanity.*``)."""

    images: int = 16  # test images checked, half of each class where possible
    layer_shares: Sequence[float] = (0.25, 0.5, 1.0)  # cascade steps after the head
    max_spearman: float = 0.5  # flag: mean rank correlation at the last step at or above this
    deletion_fractions: Sequence[float] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_shares", tuple(float(s) for s in self.layer_shares))
        fractions = tuple(float(f) for f in self.deletion_fractions)
        object.__setattr__(self, "deletion_fractions", fractions)
        if not all(0.0 < s <= 1.0 for s in self.layer_shares):
            raise ValueError(f"audit.sanity.layer_shares={list(self.layer_shares)}: in (0, 1]")
        if len(fractions) < 2 or fractions[0] != 0.0 or list(fractions) != sorted(set(fractions)):
            raise ValueError(
                f"audit.sanity.deletion_fractions={list(fractions)}: rising from 0.0, e.g. "
                "[0.0, 0.05, 0.1, 0.2, 0.5]"
            )


@dataclass(frozen=True)
class RandomisationStep:
    """One step of the cascade: what was re-initialised and how close the maps stayed."""

    step: str  # e.g. "head + top 25 % of layers"
    layers: int  # weighted layers re-initialised, the head's included
    down_to: str  # the lowest layer re-initialised
    spearman: float  # mean over images of the rank correlation with the original map
    ssim: float  # mean SSIM with the original map (both scaled to [0, 1])
    n_flat: int  # images whose map became constant (rank correlation 0 taken for them)


@dataclass(frozen=True)
class Randomisation:
    """The model-parameter randomisation test of one method."""

    n_images: int
    steps: list[RandomisationStep]
    flagged: bool  # the last step's mean rank correlation is at or above the limit


@dataclass(frozen=True)
class Deletion:
    """The deletion curves of one method: mean P(COVID) per fraction of pixels removed."""

    n_images: int
    fractions: list[float]
    attributed: list[float]  # top-attributed pixels removed first
    random: list[float]  # random pixels removed
    area_between: float  # mean of (random − attributed) over the fractions (trapezoid)


@dataclass(frozen=True)
class SanityCheck:
    """Both checks of one heatmap method."""

    randomisation: Randomisation
    deletion: Deletion


def weighted_layers(net: nn.Module, head: str) -> list[str]:
    """Names of ``net``'s modules that hold their own parameters, top (nearest the output)
    first, the head's left out."""
    names = [
        name
        for name, module in net.named_modules()
        if any(True for _ in module.parameters(recurse=False))
        and name != head
        and not name.startswith(f"{head}.")
    ]
    return names[::-1]


def reinitialise(net: nn.Module, names: Sequence[str]) -> None:
    """Re-initialise the named modules (and everything below them) with their own
    ``reset_parameters``."""
    for name in names:
        for module in net.get_submodule(name).modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


def cascade(net: nn.Module, head: str, shares: Sequence[float]) -> list[tuple[str, list[str]]]:
    """(step name, modules re-initialised) per step: the head, then the head and the top
    ``share`` of the weighted layers for each share."""
    layers = weighted_layers(net, head)
    steps = [("head", [head])]
    for share in shares:
        count = max(1, round(share * len(layers)))
        steps.append((f"head + top {share:.0%} of layers", [head, *layers[:count]]))
    return steps


def scaled(heatmap: np.ndarray) -> np.ndarray:
    """A map scaled to [0, 1] (a constant map becomes zeros)."""
    low, high = float(heatmap.min()), float(heatmap.max())
    return (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)


def similarity(original: np.ndarray, changed: np.ndarray) -> tuple[float, float, bool]:
    """(Spearman rank correlation, SSIM, whether either map is constant) of two maps; a constant
    map has rank correlation 0 with any other."""
    flat = bool(np.ptp(original) == 0 or np.ptp(changed) == 0)
    rho = 0.0 if flat else float(spearmanr(original.ravel(), changed.ravel()).statistic)
    ssim = float(structural_similarity(scaled(original), scaled(changed), data_range=1.0))
    return rho, ssim, flat


def maps_of(explainer: Explainer, net: nn.Module, target_layer: str, images: torch.Tensor):
    """``explainer``'s maps of ``images`` for ``net``, as a float64 array (N, H, W)."""
    model = SimpleNamespace(net=net, target_layer=target_layer)
    return explainer(model, images).detach().double().cpu().numpy()


def randomisation_tests(
    classifier: nn.Module | SimpleNamespace,
    images: torch.Tensor,
    explainers: Mapping[str, Explainer],
    originals: Mapping[str, np.ndarray],
    settings: SanitySettings,
) -> dict[str, Randomisation]:
    """The cascade of :func:`cascade` applied to copies of ``classifier.net`` (``head_name``,
    ``target_layer`` as the audit's model has them); the model itself is left untouched."""
    found: dict[str, list[RandomisationStep]] = {name: [] for name in explainers}
    for step, names in cascade(classifier.net, classifier.head_name, settings.layer_shares):
        # Normal tensors, also when called under inference mode (the audit after Lightning's
        # test): Grad-CAM backpropagates through the copy.
        with torch.inference_mode(False), torch.random.fork_rng(devices=[]):
            net = copy.deepcopy(classifier.net).eval()
            torch.manual_seed(settings.seed)
            reinitialise(net, names)
        for method, explainer in explainers.items():
            changed = maps_of(explainer, net, classifier.target_layer, images)
            pairs = [similarity(a, b) for a, b in zip(originals[method], changed, strict=True)]
            rho, ssim, flat = (np.asarray(v) for v in zip(*pairs, strict=True))
            found[method].append(
                RandomisationStep(
                    step,
                    len(names),
                    names[-1],
                    float(rho.mean()),
                    float(ssim.mean()),
                    int(flat.sum()),
                )  # fmt: skip
            )
    return {
        method: Randomisation(len(images), steps, steps[-1].spearman >= settings.max_spearman)
        for method, steps in found.items()
    }


@torch.no_grad()
def deletion_curve(
    net: nn.Module,
    images: torch.Tensor,
    heatmaps: np.ndarray,
    fractions: Sequence[float],
    baseline: float,
    seed: int,
) -> Deletion:
    """Mean P(COVID) of ``images`` with the top-attributed (by ``heatmaps``, ties broken at
    random) and with random pixels set to ``baseline``, per fraction of pixels removed."""
    rng = np.random.default_rng(seed)
    score = score_module(net, "prob")
    pixels = images.shape[-1] * images.shape[-2]
    attributed, random = np.zeros(len(fractions)), np.zeros(len(fractions))
    for image, heatmap in zip(images, heatmaps, strict=True):
        order = np.lexsort((rng.random(pixels), -heatmap.ravel()))  # highest first
        for ranking, sums in ((order, attributed), (rng.permutation(pixels), random)):
            copies = image.repeat(len(fractions), 1, 1, 1)
            for i, fraction in enumerate(fractions):
                gone = torch.as_tensor(ranking[: round(fraction * pixels)], device=images.device)
                copies[i].view(copies.shape[1], -1)[:, gone] = baseline
            sums += score(copies).double().cpu().numpy()
    attributed, random = attributed / len(images), random / len(images)
    gap = random - attributed
    span = fractions[-1] - fractions[0]
    area = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(fractions)) / span)
    return Deletion(len(images), list(fractions), attributed.tolist(), random.tolist(), area)


def sanity_checks(
    classifier: nn.Module | SimpleNamespace,
    images: torch.Tensor,
    explainers: Mapping[str, Explainer],
    settings: SanitySettings,
    baseline: float = 0.0,
) -> dict[str, SanityCheck]:
    """Both checks of every explainer on ``images`` (model input, (N, C, H, W)) for
    ``classifier`` (``net`` in eval mode, ``head_name``, ``target_layer``)."""
    originals = {
        name: maps_of(explainer, classifier.net, classifier.target_layer, images)
        for name, explainer in explainers.items()
    }
    randomised = randomisation_tests(classifier, images, explainers, originals, settings)
    return {
        name: SanityCheck(
            randomised[name],
            deletion_curve(
                classifier.net,
                images,
                originals[name],
                settings.deletion_fractions,
                baseline,
                settings.seed,
            ),  # fmt: skip
        )
        for name in explainers
    }


def sanity_findings(checks: Mapping[str, SanityCheck], settings: SanitySettings) -> list[str]:
    """The checks' findings in words: each flagged method, and each whose deletion curve falls
    no faster than random removal."""
    found = []
    for method, check in checks.items():
        last = check.randomisation.steps[-1]
        if check.randomisation.flagged:
            found.append(
                f"{method}: {FLAG_WORDS} (rank correlation {last.spearman:.2f}, SSIM "
                f"{last.ssim:.2f} with the original maps after re-initialising the "
                f"{last.step}; limit {settings.max_spearman:g})."
            )
        if check.deletion.area_between <= 0:
            found.append(
                f"{method}: removing its top-attributed pixels lowers P(COVID) no faster than "
                f"removing random pixels (area between the curves "
                f"{check.deletion.area_between:+.3f}): its maps do not point at what the model "
                "uses."
            )
    return found
