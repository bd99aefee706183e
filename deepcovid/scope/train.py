"""``python -m deepcovid.scope.train``: train the scope check and evaluate it on held-out
patients (settings in conf/scope_train.yaml).

Frontal images come from the ``frontal`` manifests, lateral views and CT images from the
``nonfrontal`` manifest (its ``kind`` column), non-radiographs are generated
(:mod:`deepcovid.scope.synthetic`). Patients are split into train and held out (grouped, seeded,
one split over every manifest); classes are balanced in each epoch and augmented heavily.
Writes to the run directory ``scope_net.safetensors`` + ``scope_net.json`` (copy both into
``deepcovid/scope/`` to ship them), ``evaluation.json`` (held-out accuracy per kind with Wilson
intervals, speed, training time) and ``heldout_scores.csv`` (one row per held-out image).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from sklearn.model_selection import GroupShuffleSplit
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from deepcovid.data.io import load_image
from deepcovid.metrics.intervals import proportion_interval
from deepcovid.scope.check import ScopeChecker, read_small
from deepcovid.scope.model import CLASSES, IN_SCOPE, ScopeNet, ScopeShape
from deepcovid.scope.synthetic import synthetic_image
from deepcovid.scope.weights import WEIGHTS_NAME, save_network
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.files import printable, sha256_of, write_csv_atomic, write_json_atomic
from deepcovid.utils.small_nets import to_working_pixels
from deepcovid.utils.system import available_cpus

log = logging.getLogger(__name__)
SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class Example:
    """One training or held-out image: its path (or synthetic id), class and patient."""

    path: str
    kind: str  # one of CLASSES
    group: str
    source: str


def read_examples(cfg: DictConfig) -> list[Example]:
    """Every real image of the configured manifests."""
    examples = []
    for source, csv in cfg.frontal.items():
        table = pd.read_csv(csv)
        for row in table.itertuples():
            path = Path(csv).parent / row.path
            examples.append(Example(str(path), "frontal", str(row.patient_id), source))
    table = pd.read_csv(cfg.nonfrontal)
    unknown = set(table["kind"]) - set(CLASSES)
    if unknown:
        raise ValueError(f"{cfg.nonfrontal}: kind {sorted(unknown)} not in {list(CLASSES)}")
    for row in table.itertuples():
        path = Path(cfg.nonfrontal).parent / row.path
        examples.append(Example(str(path), row.kind, str(row.patient_id), "nonfrontal"))
    return examples


def drop_repeats(examples: list[Example]) -> list[Example]:
    """The first row of each file content (sha256): a file listed twice, even under two
    patient ids, could otherwise be trained on and held out at once. Repeats are logged."""
    kept: dict[str, Example] = {}
    for example in examples:
        first = kept.setdefault(sha256_of(example.path), example)
        if first is not example:
            log.warning("%s repeats %s: left out", printable(example.path), printable(first.path))
    return list(kept.values())


def split_by_patient(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """``(train, heldout)``: about ``fraction`` of the patients held out; no patient on both
    sides."""
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    groups = [e.group for e in examples]
    train, heldout = next(splitter.split(np.zeros(len(examples)), groups=groups))
    return [examples[i] for i in train], [examples[i] for i in heldout]


def synthetic_examples(count: int, seed: int, size: int) -> tuple[list[Example], np.ndarray]:
    """``count`` generated non-radiographs and their pixels."""
    rng = np.random.default_rng(seed)
    pixels = np.stack([synthetic_image(rng, size) for _ in range(count)])
    examples = [
        Example(f"{SYNTHETIC}:{seed}:{i}", "other", SYNTHETIC, SYNTHETIC) for i in range(count)
    ]
    return examples, pixels


def load_pixels(examples: list[Example], size: int) -> np.ndarray:
    """``(N, size, size)`` uint8, each image stretched to the square."""
    return np.stack([to_working_pixels(load_image(e.path), size) for e in examples])


class Augmentation:
    """Batched random affine (zoom, aspect, rotation, shift, flip), gamma, blur and noise, then
    per-image standardisation (as :func:`deepcovid.utils.small_nets.standardise`): uint8
    ``(N, 1, L, L)`` to float ``(N, 1, S, S)``."""

    def __init__(self, cfg: DictConfig, size: int) -> None:
        self.cfg, self.size = cfg, size

    def uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return torch.empty(n).uniform_(low, high)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        cfg, n = self.cfg, len(pixels)
        values = pixels.float() / 255.0
        zoom = self.uniform(n, *cfg.crop_scale).sqrt()
        aspect = self.uniform(n, *cfg.crop_ratio).sqrt()
        angle = torch.deg2rad(self.uniform(n, -cfg.degrees, cfg.degrees))
        flip = torch.where(torch.rand(n) < cfg.hflip_prob, -1.0, 1.0)
        sx, sy = zoom * aspect * flip, zoom / aspect
        shift_x, shift_y = (1 - zoom) * self.uniform(n, -1, 1), (1 - zoom) * self.uniform(n, -1, 1)
        theta = torch.stack([
            torch.stack([sx * angle.cos(), -sy * angle.sin(), shift_x], 1),
            torch.stack([sx * angle.sin(), sy * angle.cos(), shift_y], 1),
        ], 1)  # fmt: skip
        grid = F.affine_grid(theta, [n, 1, self.size, self.size], align_corners=False)
        values = F.grid_sample(values, grid, align_corners=False)
        blurred = F.avg_pool2d(values, 3, 1, 1, count_include_pad=False)
        values = torch.where((torch.rand(n) < cfg.blur_prob)[:, None, None, None], blurred, values)
        values = values.clamp(0, 1) ** self.uniform(n, *cfg.gamma)[:, None, None, None]
        noise = torch.rand(n)[:, None, None, None] * cfg.noise_std
        values = values + torch.randn_like(values) * noise
        mean = values.mean(dim=(1, 2, 3), keepdim=True)
        std = values.std(dim=(1, 2, 3), keepdim=True, correction=0).clamp_min(1e-3)
        return (values - mean) / std


def fit(network: ScopeNet, pixels: np.ndarray, labels: list[int], cfg: DictConfig) -> list[float]:
    """Train ``network`` in place on ``(N, L, L)`` uint8 ``pixels``, classes drawn equally
    often; the mean loss per epoch."""
    counts = np.bincount(labels, minlength=len(CLASSES))
    weights = [1.0 / counts[label] for label in labels]
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler = WeightedRandomSampler(weights, cfg.epoch_size, replacement=True, generator=generator)
    data = TensorDataset(torch.from_numpy(pixels)[:, None], torch.tensor(labels))
    loader = DataLoader(data, batch_size=cfg.batch_size, sampler=sampler)
    augment = Augmentation(cfg.augmentation, cfg.working_size)
    optimizer = torch.optim.AdamW(network.parameters(), **cfg.optimizer)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.optimizer.lr, total_steps=cfg.epochs * len(loader)
    )
    losses = []
    for epoch in range(cfg.epochs):
        network.train()
        started, total, seen = time.perf_counter(), 0.0, 0
        for images, targets in loader:
            loss = F.cross_entropy(network(augment(images)), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total, seen = total + float(loss.detach()) * len(targets), seen + len(targets)
        losses.append(total / seen)
        log.info("epoch %d/%d loss %.4f (%.0f s)", epoch + 1, cfg.epochs, losses[-1],
                 time.perf_counter() - started)  # fmt: skip
    return losses


def accuracy(correct: pd.Series, confidence: float) -> dict[str, Any]:
    """Share correct with its Wilson interval."""
    hits, total = int(correct.sum()), len(correct)
    low, high = proportion_interval(hits, total, "wilson", confidence)
    return {"correct": hits, "n": total, "accuracy": hits / total, "interval": [low, high]}


def score_heldout(
    checker: ScopeChecker, examples: list[Example], images: list[Image.Image]
) -> pd.DataFrame:
    """One row per held-out image: its kind, P(frontal), the verdict and whether it is right."""
    inputs = [checker.network_input(image) for image in images]
    probs = torch.cat(
        [checker.probabilities(inputs[i : i + 64]) for i in range(0, len(inputs), 64)]
    )
    rows = []
    for example, p in zip(examples, probs, strict=True):
        verdict = checker.verdict(p)
        rows.append({
            "path": printable(example.path), "kind": example.kind, "patient_id": example.group,
            "source": example.source, "p_frontal": round(float(p[IN_SCOPE]), 4),
            "in_scope": verdict.in_scope, "scope_reason": verdict.reason,
            "correct": verdict.in_scope == (example.kind == "frontal"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def speed(checker: ScopeChecker, examples: list[Example]) -> dict[str, Any]:
    """Images per second of :meth:`ScopeChecker.check_paths` (reading included) on the real
    held-out files."""
    paths = [Path(e.path) for e in examples if e.source != SYNTHETIC]
    started = time.perf_counter()
    checker.check_paths(paths)
    seconds = time.perf_counter() - started
    return {
        "images": len(paths),
        "seconds": round(seconds, 2),
        "images_per_second": round(len(paths) / seconds, 1),
        "threads": torch.get_num_threads(),
    }


def summarize(scores: pd.DataFrame, confidence: float) -> dict[str, Any]:
    """Held-out accuracy for frontal, non-frontal (and each kind), real and synthetic."""
    real = scores[scores["source"] != SYNTHETIC]
    parts = {
        "frontal": real[real["kind"] == "frontal"],
        "nonfrontal": real[real["kind"] != "frontal"],
        "lateral": real[real["kind"] == "lateral"],
        "ct": real[real["kind"] == "ct"],
        "synthetic_other": scores[scores["source"] == SYNTHETIC],
    }
    summary = {name: accuracy(part["correct"], confidence) for name, part in parts.items()}
    for name in ("frontal", "nonfrontal"):
        summary[name]["patients"] = int(parts[name]["patient_id"].nunique())
    return summary


def train_scope(cfg: DictConfig) -> dict[str, Any]:
    """Train, save and evaluate; returns what ``evaluation.json`` holds."""
    out = Path(cfg.output_dir)
    torch.set_num_threads(max(1, min(int(cfg.threads), available_cpus())))
    torch.manual_seed(cfg.seed)
    examples = drop_repeats(read_examples(cfg))
    train_set, heldout = split_by_patient(examples, cfg.heldout_fraction, cfg.seed)
    started = time.perf_counter()
    synth_train, synth_pixels = synthetic_examples(cfg.synthetic.train, cfg.seed, cfg.load_size)
    pixels = np.concatenate([load_pixels(train_set, cfg.load_size), synth_pixels])
    train_set = train_set + synth_train
    labels = [CLASSES.index(e.kind) for e in train_set]
    counts = dict(zip(CLASSES, map(int, np.bincount(labels, minlength=len(CLASSES))), strict=True))
    log.info("training on %d images: %s", len(labels), counts)
    network = ScopeNet(ScopeShape(tuple(cfg.model.widths), cfg.model.dropout))
    losses = fit(network, pixels, labels, cfg)
    train_seconds = time.perf_counter() - started
    training = {
        "frontal": list(cfg.frontal),
        "nonfrontal": Path(cfg.nonfrontal).parent.name,
        "seed": int(cfg.seed),
        "heldout_fraction": float(cfg.heldout_fraction),
        "heldout_patients": sorted({e.group for e in heldout}),
        "n_train_images": counts,
        "epochs": int(cfg.epochs),
        "train_seconds": round(train_seconds, 1),
    }
    card = save_network(network, out / WEIGHTS_NAME, cfg.working_size, cfg.threshold, training)
    checker = ScopeChecker(network.eval(), card.working_size, card.threshold, card.sha256)
    synth_heldout, synth_held_pixels = synthetic_examples(
        cfg.synthetic.heldout, cfg.seed + 1, cfg.load_size
    )
    images = [read_small(Path(e.path), 2 * card.working_size) for e in heldout]
    images += [Image.fromarray(p) for p in synth_held_pixels]
    scores = score_heldout(checker, heldout + synth_heldout, images)
    write_csv_atomic(scores, out / "heldout_scores.csv")
    result = {
        "heldout": summarize(scores, cfg.confidence),
        "speed": speed(checker, heldout),
        "train_seconds": round(train_seconds, 1),
        "epoch_losses": [round(x, 5) for x in losses],
        "parameters": sum(p.numel() for p in network.parameters()),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    write_json_atomic(result, out / "evaluation.json")
    log.info("held-out: %s; wrote %s", result["heldout"], out)
    return result


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="scope_train")
def main(cfg: DictConfig) -> None:
    train_scope(cfg)


if __name__ == "__main__":
    main()
