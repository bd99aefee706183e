"""Occlusion speed and exactness: Captum vs deepcovid (plain, incremental).

    python benchmarks/occlusion.py                       # ResNet18 + DenseNet-121, 224 px
    python benchmarks/occlusion.py --models resnet18 --sizes 448 --settings 32:16
    python benchmarks/occlusion.py --quick               # seconds: one small case

Every method runs in this one process on the same random-weight model (eval mode) and image.
Times are the best of ``--repeats`` runs; errors are |attribution - Captum's| (max and mean).
``captum`` uses its default of one occluded copy per forward pass; ``captum-batched`` passes
``perturbations_per_eval=--captum-batch``, and ``plain`` (deepcovid without incremental
inference) batches as many copies. ``incremental`` batches ``--batch-size`` copies.
Speed-ups are against ``captum`` and against the faster of the two Captum runs. The layer
account splits one batch of incremental inference by network block, next to the same blocks
computed in full (channels-last, as incremental inference runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import torch
from captum.attr import Occlusion

from deepcovid.explain.grid import OcclusionGrid
from deepcovid.explain.incremental import FULL_FRACTION, IncrementalRunner
from deepcovid.explain.occlusion import occluded_scores, occlusion
from deepcovid.explain.scoring import ProbCovid
from deepcovid.models.backbones import create_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "densenet121"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[224])
    parser.add_argument(
        "--settings", nargs="+", default=["16:8", "32:16"], help="window:stride pairs"
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="incremental")
    parser.add_argument("--captum-batch", type=int, default=8, help="captum-batched, plain")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--full-fraction", type=float, default=FULL_FRACTION)
    parser.add_argument("--skip-captum", action="store_true", help="compare with plain only")
    parser.add_argument("--quick", action="store_true", help="resnet18, 96 px, 32:16")
    args = parser.parse_args()
    if args.quick:
        args.models, args.sizes, args.settings = ["resnet18"], [96], ["32:16"]
    return args


def best_time(run: Callable[[], torch.Tensor], repeats: int, device: str) -> tuple[float, object]:
    """The fastest of ``repeats`` runs (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        began = time.perf_counter()
        result = run()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return best, result


def methods(model: torch.nn.Module, x: torch.Tensor, window: int, stride: int, args):
    """name → a zero-argument call computing the attribution."""
    channels, batch, plain_batch = x.shape[1], args.batch_size, args.captum_batch
    captum = Occlusion(model)
    shape, strides = (channels, window, window), (channels, stride, stride)
    table: dict[str, Callable[[], torch.Tensor]] = {}
    if not args.skip_captum:
        table["captum"] = lambda: captum.attribute(
            x, sliding_window_shapes=shape, strides=strides, baselines=0.0
        )
        table["captum-batched"] = lambda: captum.attribute(
            x, sliding_window_shapes=shape, strides=strides, baselines=0.0,
            perturbations_per_eval=plain_batch,
        )  # fmt: skip
    table["plain"] = lambda: occlusion(
        model, x, window, stride, batch_size=plain_batch, method="plain"
    )
    table["incremental"] = lambda: occlusion(
        model, x, window, stride, batch_size=batch, method="incremental",
        full_fraction=args.full_fraction,
    )  # fmt: skip
    return table


def layer_account(model, x, window, stride, args) -> list[tuple[str, float, float, float]]:
    """Per block: ms per occluded copy incremental, share of the maps computed, ms in full."""
    grid = OcclusionGrid.create(tuple(x.shape[-2:]), window, stride)
    tops, lefts = grid.positions(x.device)
    positions = (tops[: args.batch_size], lefts[: args.batch_size])
    accounts = []
    with torch.inference_mode():
        for fraction in (args.full_fraction, 0.0):
            runner = IncrementalRunner(model, grid, fraction, profile=False)
            runner.start(x[:1], torch.zeros_like(x[:1]))
            occluded_scores(runner, positions, args.batch_size)  # warm-up
            runner.profile = True
            occluded_scores(runner, positions, args.batch_size)
            accounts.append(runner.account)
    incremental, full = accounts
    copies = len(positions[0])
    return [
        (block, 1e3 * seconds / copies, share / max(nodes, 1), 1e3 * full[block][0] / copies)
        for block, (seconds, share, nodes) in incremental.items()
    ]


def run_case(name: str, size: int, window: int, stride: int, args) -> None:
    torch.manual_seed(0)
    model = ProbCovid(create_backbone(name, pretrained=False).net).eval().to(args.device)
    x = torch.randn(1, 3, size, size, device=args.device)
    positions = len(OcclusionGrid.create((size, size), window, stride))
    print(f"\n## {name}, {size}×{size} px, window {window}, stride {stride}: {positions} windows")
    times, results = {}, {}
    for method, run in methods(model, x, window, stride, args).items():
        times[method], results[method] = best_time(run, args.repeats, args.device)
    reference = results.get("captum", results["plain"])
    peak = reference.abs().max().item()
    baselines = [m for m in ("captum", "captum-batched") if m in times] or ["plain"]
    best = min(times[m] for m in baselines)
    print(f"max |attribution| = {peak:.3g}")
    print(
        f"{'method':16s} {'seconds':>9s} {'ms/window':>10s} {'vs ' + baselines[0]:>11s} "
        f"{'vs best':>8s} {'max err':>10s} {'mean err':>10s}"
    )
    for method, seconds in times.items():
        error = (results[method] - reference).abs()
        print(
            f"{method:16s} {seconds:9.2f} {1e3 * seconds / positions:10.2f} "
            f"{times[baselines[0]] / seconds:10.2f}× {best / seconds:7.2f}× "
            f"{error.max():10.2e} {error.mean():10.2e}"
        )
    print("layer account of incremental inference (one batch):")
    print(f"{'block':16s} {'ms/copy':>9s} {'computed':>9s} {'full ms':>9s}")
    for block, ms, share, full_ms in layer_account(model, x, window, stride, args):
        print(f"{block:16s} {ms:9.2f} {share:9.0%} {full_ms:9.2f}")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"# occlusion benchmark: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {args.device}, batch {args.batch_size} (captum/plain {args.captum_batch}), "
        f"repeats {args.repeats}"
    )
    for name in args.models:
        for size in args.sizes:
            for setting in args.settings:
                window, stride = (int(v) for v in setting.split(":"))
                run_case(name, size, window, stride, args)


if __name__ == "__main__":
    main()
