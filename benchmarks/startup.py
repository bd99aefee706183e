"""Start-up cost: seconds from launching ``python -m deepcovid.train`` to its first training
step, first run (empty cache folder) and second run (same cache folder, unchanged files), on
full-resolution radiographs: ``../shared/data/cxr-fullres`` (29 files up to 4280 px) and
folders of 1,000 and 10,000 links to those files, for this checkout and, with ``--baseline``,
another checkout of deepcovid (e.g. a worktree of an older commit) in the same run.

    python -m benchmarks.startup [--counts 29 1000] [--baseline ../old-checkout] [--out FILE]

The first step is stamped by a callback (``+callbacks.first_step``) written to a scratch
folder, so the same stamp works for both checkouts; links share their target's content, so
exact duplicates across splits are only warned about (``on_leak=warn``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepcovid.data.io import is_image_file

REPO = Path(__file__).resolve().parents[1]
FULLRES = REPO.parent / "shared" / "data" / "cxr-fullres"
SPLITS = ("train/covid", "train/non", "test/covid", "test/non")
TIMER = """
import os, time
from lightning.pytorch.callbacks import Callback


class FirstStepTimer(Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        path = os.environ["DEEPCOVID_FIRST_STEP_FILE"]
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(repr(time.time()))
"""


def linked_dataset(originals: list[Path], count: int, root: Path) -> Path:
    """``count`` links to ``originals`` in the COVID-Xray-5k layout, spread over the splits."""
    for split in SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
    for k in range(count):
        source = originals[k % len(originals)]
        link = root / SPLITS[k % len(SPLITS)] / f"{k:05d}{source.suffix}"
        if not link.exists():
            link.symlink_to(source.resolve())
    return root


def overrides_for(checkout: Path, data: Path, run_dir: Path) -> list[str]:
    """The same short run for either checkout: one training step, no evaluation."""
    old = not (checkout / "deepcovid" / "data" / "cache.py").read_text().count("FileFacts")
    leak = "check_data.on_leak=warn" if old else "data.on_leak=warn"
    return [
        f"data.root={data}", "model.pretrained=false", "trainer.max_epochs=1",
        "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0", "test=false",
        "logger=csv", "print_config=false", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "data.num_workers=2", leak,
        "+callbacks.first_step._target_=first_step_timer.FirstStepTimer",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip


def time_to_first_step(checkout: Path, data: Path, cache: Path, scratch: Path) -> float:
    """Seconds from launch to the first training step of one run."""
    stamp = scratch / f"stamp-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(checkout), str(scratch)]),
        "DEEPCOVID_CACHE_DIR": str(cache),
        "DEEPCOVID_FIRST_STEP_FILE": str(stamp),
        "WANDB_MODE": "disabled",
    }
    run_dir = scratch / f"run-{time.monotonic_ns()}"
    launched = time.time()
    result = subprocess.run(
        # its own configs: an editable install maps deepcovid.conf to the installed checkout's
        [sys.executable, "-m", "deepcovid.train", "--config-path", str(checkout / "conf"),
         *overrides_for(checkout, data, run_dir)],
        cwd=scratch, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if not stamp.exists():
        raise RuntimeError(f"{checkout}: no training step (exit {result.returncode}):\n"
                           f"{result.stderr[-3000:]}")  # fmt: skip
    return float(stamp.read_text()) - launched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=[29, 1000, 10000])
    parser.add_argument("--baseline", type=Path, default=None, help="another deepcovid checkout")
    parser.add_argument("--originals", type=Path, default=FULLRES)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    originals = sorted(p for p in args.originals.rglob("*") if is_image_file(p))
    if not originals:
        print(f"skipped: no images under {args.originals}")
        return 0
    checkouts = {"this checkout": REPO}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    rows = []
    with tempfile.TemporaryDirectory(prefix="deepcovid-startup-") as scratch:
        scratch = Path(scratch)
        (scratch / "first_step_timer.py").write_text(TIMER)
        for count in args.counts:
            data = args.originals if count == len(originals) else linked_dataset(
                originals, count, scratch / f"links-{count}")  # fmt: skip
            for name, checkout in checkouts.items():
                cache = scratch / f"cache-{name.replace(' ', '-')}-{count}"
                first = time_to_first_step(checkout, data, cache, scratch)
                second = time_to_first_step(checkout, data, cache, scratch)
                rows.append({"files": count, "checkout": name, "first_s": round(first, 1),
                             "second_s": round(second, 1)})  # fmt: skip
                print(f"| {count} | {name} | {first:.1f} | {second:.1f} |", flush=True)
    if args.out:
        args.out.write_text(
            json.dumps({"cpus": len(os.sched_getaffinity(0)), "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
