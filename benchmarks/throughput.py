"""Framework overhead: train and inference images/s per backbone through deepcovid (Lightning
Trainer + CovidClassifier) and through a plain PyTorch loop doing the same work, in one process.

    python -m benchmarks.throughput --device cpu --image-size 112 --batch-size 16 --steps 10

Both read the same batches, already on the device (so data loading and transfer are not
measured), build the network the same way (``CovidClassifier``, so ``finetune=head`` freezes
the same layers), train with Adam + cross-entropy, and evaluate with loss and P(COVID) kept
per image. The Trainer is bare (no logger, no checkpointing); a third column adds deepcovid's
one per-step callback, ``StopOnNonFiniteLoss`` (the other default callbacks act at epoch
ends). Each measurement skips ``--warmup`` steps, then times ``--steps`` steps; the runs
alternate ``--repeats`` times and the best of each is kept (this damps noise from other
processes).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from functools import partial
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.loops import PRECISIONS, Timing, inference_step, synchronize, timed, train_step
from deepcovid.callbacks.safety import StopOnNonFiniteLoss
from deepcovid.models.classifier import CovidClassifier
from deepcovid.results.markdown import table

BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]


class DeviceBatches(Dataset):
    """``count`` batches like deepcovid's (normalised images, labels, indices), already on
    ``device``: a few distinct random batches, cycled. Load with ``batch_size=None``."""

    def __init__(self, count: int, batch_size: int, image_size: int, device: str) -> None:
        generator = torch.Generator().manual_seed(0)
        self.count = count
        self.batches = [
            {
                "image": torch.randn(batch_size, 3, image_size, image_size, generator=generator),
                "label": torch.randint(0, 2, (batch_size,), generator=generator),
                "index": torch.arange(batch_size) + i * batch_size,
            }
            for i in range(4)
        ]
        self.batches = [{k: v.to(device) for k, v in b.items()} for b in self.batches]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.batches[i % len(self.batches)]


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


def through_lightning(
    backbone: str, mode: str, loader: DataLoader, args, callbacks: list[L.Callback]
) -> Timing:
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
        callbacks=[timer, *callbacks],
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
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    L.seed_everything(0, verbose=False)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")  # e.g. "no val_dataloader"
    batches = DeviceBatches(
        args.warmup + args.steps + 1, args.batch_size, args.image_size, args.device
    )
    loader = DataLoader(batches, batch_size=None)
    runs = {
        "plain": through_plain_loop,
        "deepcovid": partial(through_lightning, callbacks=[]),
        "+ safety": partial(through_lightning, callbacks=[StopOnNonFiniteLoss()]),
    }
    rows, overheads = [], []
    for backbone in args.backbones:
        for mode in ("train", "inference"):
            names = list(runs) if mode == "train" else ["plain", "deepcovid"]
            best = dict.fromkeys(names, 0.0)
            for _ in range(args.repeats):
                for name in names:
                    speed = runs[name](backbone, mode, loader, args).per_second
                    best[name] = max(best[name], speed)
            print(backbone, mode, {k: round(v, 1) for k, v in best.items()}, flush=True)
            overhead = {name: best["plain"] / best[name] - 1 for name in names}
            overheads.append(overhead["deepcovid"])
            rows.append(
                [backbone, mode, *(f"{best[name]:.1f}" for name in names[:2]),
                 f"{100 * overhead['deepcovid']:+.1f} %",
                 *([f"{best['+ safety']:.1f}", f"{100 * overhead['+ safety']:+.1f} %"]
                   if mode == "train" else ["—", "—"])]
            )  # fmt: skip
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    device += f", {torch.get_num_threads()} threads"
    print(
        f"\n{device}, {args.image_size} px, batch {args.batch_size}, {args.steps} timed steps, "
        f"precision {args.precision}, finetune={args.finetune}, "
        f"channels_last={args.channels_last}, best of {args.repeats}\n"
    )
    header = ["backbone", "mode", "plain img/s", "deepcovid img/s", "overhead",
              "deepcovid + StopOnNonFiniteLoss img/s", "overhead"]  # fmt: skip
    print(table(header, rows))
    print(f"\nlargest Lightning overhead: {100 * max(overheads):+.1f} % (goal ≤ 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
