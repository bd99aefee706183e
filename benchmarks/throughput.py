"""Framework overhead: train and inference images/s per backbone through deepcovid (Lightning
Trainer + CovidClassifier) and through a plain PyTorch loop doing the same work, in one process.

    python -m benchmarks.throughput --device cpu --image-size 112 --batch-size 16 --steps 10

Both read the same in-memory batches (so data loading is not measured), build the network
the same way (``CovidClassifier``, so ``finetune=head`` freezes the same layers), train with
Adam + cross-entropy, and evaluate with loss and P(COVID) kept per image. Each measurement
skips ``--warmup`` steps, then times ``--steps`` steps; plain and Lightning runs alternate
``--repeats`` times and the best of each is kept (this damps noise from other processes).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.loops import PRECISIONS, Timing, inference_step, synchronize, timed, train_step
from deepcovid.markdown import table
from deepcovid.models.classifier import CovidClassifier

BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]


class SyntheticImages(Dataset):
    """Fixed random normalised images with labels and indices, like deepcovid's batches."""

    def __init__(self, count: int, image_size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(count, 3, image_size, image_size, generator=generator)
        self.labels = torch.randint(0, 2, (count,), generator=generator)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "label": self.labels[i], "index": i}


class StepTimer(L.Callback):
    """Times Lightning batches ``warmup`` to ``warmup + steps - 1`` (train or validation)."""

    def __init__(self, warmup: int, steps: int, batch_size: int) -> None:
        self.warmup, self.last, self.batch_size = warmup, warmup + steps - 1, batch_size
        self.start = self.seconds = 0.0

    def begin(self, trainer: L.Trainer, batch_idx: int) -> None:
        if batch_idx == self.warmup:
            synchronize(trainer.strategy.root_device)
            self.start = time.perf_counter()

    def end(self, trainer: L.Trainer, batch_idx: int) -> None:
        if batch_idx == self.last:
            synchronize(trainer.strategy.root_device)
            self.seconds = time.perf_counter() - self.start

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.begin(trainer, batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.end(trainer, batch_idx)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, idx=0) -> None:
        self.begin(trainer, batch_idx)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, idx=0):
        self.end(trainer, batch_idx)

    def timing(self) -> Timing:
        return Timing((self.last - self.warmup + 1) * self.batch_size, self.seconds)


def classifier(backbone: str, args: argparse.Namespace) -> CovidClassifier:
    torch.manual_seed(0)
    return CovidClassifier(
        backbone, pretrained=False, finetune=args.finetune, channels_last=args.channels_last
    )


def through_lightning(backbone: str, mode: str, loader: DataLoader, args) -> Timing:
    """Images/s of ``trainer.fit`` (train) or ``trainer.validate`` (inference)."""
    timer = StepTimer(args.warmup, args.steps, args.batch_size)
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu",
        devices=1,
        precision=args.precision,
        benchmark=args.device == "cuda",
        max_steps=args.warmup + args.steps,
        limit_val_batches=0 if mode == "train" else args.warmup + args.steps,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    model = classifier(backbone, args)
    if mode == "train":
        trainer.fit(model, train_dataloaders=loader)
    else:
        trainer.validate(model, dataloaders=loader, verbose=False)
    return timer.timing()


def through_plain_loop(backbone: str, mode: str, loader: DataLoader, args) -> Timing:
    """Images/s of the same work in a plain PyTorch loop."""
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.device == "cuda"
    model = classifier(backbone, args).to(device)
    memory_format = model.memory_format
    if mode == "train":
        model.train()  # finetune=head: frozen backbone in eval mode, as in deepcovid
        parameters = [p for p in model.net.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(parameters, lr=1e-4)
        step = train_step(model.net, optimizer, device, args.precision, memory_format)
    else:
        model.eval()
        step = inference_step(model.net, device, args.precision, memory_format)
    return timed(step, loader, args.warmup, args.steps, device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=BACKBONES)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", choices=PRECISIONS, default="32-true")
    parser.add_argument("--finetune", choices=["head", "full"], default="head")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)
    L.seed_everything(0, verbose=False)
    dataset = SyntheticImages((args.warmup + args.steps + 1) * args.batch_size, args.image_size)
    loader = DataLoader(dataset, batch_size=args.batch_size)
    rows, overheads = [], []
    for backbone in args.backbones:
        for mode in ("train", "inference"):
            best = {"plain": 0.0, "deepcovid": 0.0}
            for _ in range(args.repeats):
                plain = through_plain_loop(backbone, mode, loader, args).per_second
                ours = through_lightning(backbone, mode, loader, args).per_second
                best = {
                    "plain": max(best["plain"], plain),
                    "deepcovid": max(best["deepcovid"], ours),
                }
            overhead = best["plain"] / best["deepcovid"] - 1
            overheads.append(overhead)
            rows.append(
                [backbone, mode, f"{best['plain']:.1f}", f"{best['deepcovid']:.1f}",
                 f"{best['deepcovid'] / best['plain']:.3f}", f"{100 * overhead:+.1f} %"]
            )  # fmt: skip
    device = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({args.device})"
    print(
        f"\n{device}, {args.image_size} px, batch {args.batch_size}, {args.steps} timed steps, "
        f"precision {args.precision}, finetune={args.finetune}, "
        f"channels_last={args.channels_last}, best of {args.repeats}\n"
    )
    header = ["backbone", "mode", "plain img/s", "deepcovid img/s", "ratio", "overhead"]
    print(table(header, rows))
    print(f"\nlargest Lightning overhead: {100 * max(overheads):+.1f} % (goal ≤ 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
