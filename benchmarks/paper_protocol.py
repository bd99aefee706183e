"""The paper's protocol on one GPU, timed: four backbones × 100 epochs on a COVID-Xray-5k-sized
set, then ``report``, as one multirun of the commands users type.

    python -m benchmarks.paper_protocol --out paper            # 84 + 2000 train, 100 + 3000 test
    python -m benchmarks.paper_protocol --out paper --modes head:100 full:10 --jobs 4
    python -m benchmarks.paper_protocol --out tiny --scale 0.01 --modes head:1 --device cpu

Synthetic radiograph-sized JPEGs (about ``--source-size`` px, :mod:`benchmarks.gpu`'s
generator) in the COVID-Xray-5k layout; ``experiment=deepcovid_paper`` (224 px, Adam 1e-4,
batch 20, COVID over-sampled 5×, cut-off 0.2) with random initial weights (no internet: the
speed of a step does not depend on the weights' values), bf16-mixed, channels_last, the pixel
cache and on-device normalisation, no near-duplicate check (the synthetic images are alike by
design: their perceptual hashes are close), ``--jobs`` backbones at a time on the one GPU (Hydra's
joblib launcher). Per backbone: wall time from its log's first to last line, and the share of
training-loop time spent waiting for the next batch (Lightning's SimpleProfiler). Over the
sweep: wall time and GPU utilisation sampled by ``nvidia-smi`` every 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from benchmarks.gpu import radiograph
from deepcovid.results.markdown import table

BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]
COUNTS = {"train/covid": 84, "train/non": 2000, "test/covid": 100, "test/non": 3000}
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def write_dataset(root: Path, scale: float, size: int) -> dict[str, int]:
    """COVID-Xray-5k's layout and counts (× ``scale``, at least 4 per folder) as JPEGs."""
    counts = {folder: max(4, round(n * scale)) for folder, n in COUNTS.items()}
    jobs = []
    seed = 0
    for folder, count in counts.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            jobs.append((root / folder / f"{i:04d}.jpg", seed))
            seed += 1

    def write(job: tuple[Path, int]) -> None:
        radiograph(job[1], size).save(job[0], quality=90)

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, jobs))
    return counts


class GpuSampler:
    """``nvidia-smi`` utilisation and memory every 0.5 s, in a background thread."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.process: subprocess.Popen | None = None
        self.thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits", "-lms", "500"],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            self.thread = threading.Thread(target=self.read, daemon=True)
            self.thread.start()
        return self

    def read(self) -> None:
        for line in self.process.stdout:
            fields = [f.strip() for f in line.split(",")]
            if len(fields) == 2 and all(f.replace(".", "").isdigit() for f in fields):
                self.samples.append((float(fields[0]), float(fields[1])))

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_memory_max_mib": None}
        util = [u for u, _ in self.samples]
        return {
            "gpu_util_mean": round(sum(util) / len(util), 1),
            "gpu_memory_max_mib": max(m for _, m in self.samples),
            "samples": len(util),
        }


def log_seconds(log: Path) -> float | None:
    """Seconds from a job log's first to its last time stamp."""
    stamps = [m.group(1) for line in log.read_text().splitlines() if (m := STAMP.match(line))]
    if len(stamps) < 2:
        return None
    first, last = (datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


def data_wait_share(job: Path) -> float | None:
    """Share of the training epochs' time spent fetching the next batch (SimpleProfiler)."""
    reports = list(job.glob("**/fit-profile.txt"))
    if not reports:
        return None
    totals = {}
    for line in reports[0].read_text().splitlines():
        cells = [c.strip() for c in line.split("|") if c.strip()]
        if len(cells) >= 4:
            totals[cells[0]] = cells[3]  # action | mean | calls | total | percent
    try:
        fetch = float(totals["[_TrainingEpochLoop].train_dataloader_next"])
        epochs = float(totals["run_training_epoch"])
    except (KeyError, ValueError):
        return None
    return fetch / epochs


def run_mode(args: argparse.Namespace, data: Path, mode: str, epochs: int) -> dict:
    """One multirun of the four backbones in ``mode`` (head | full), then report."""
    sweep = args.out / f"sweep-{mode}"
    shutil.rmtree(sweep, ignore_errors=True)
    device = (
        ["trainer=gpu", "model.channels_last=true"]
        if args.device == "cuda"
        else ["trainer=cpu", "trainer.precision=32-true"]
    )
    launcher = (
        ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.jobs}"] if args.jobs > 1 else []
    )
    overrides = [
        "experiment=deepcovid_paper", f"model={','.join(args.backbones)}",
        "model.pretrained=false", f"model.finetune={mode}", f"trainer.max_epochs={epochs}",
        f"data.root={data}", "data.near_duplicates=false", "data.cache=true",
        "data.normalize_on_device=true",
        f"data.num_workers={args.workers}", "trainer.enable_progress_bar=false",
        "logger=csv", "print_config=false", f"hydra.sweep.dir={sweep}",
        "+trainer.profiler._target_=lightning.pytorch.profilers.SimpleProfiler",
        "+trainer.profiler.filename=profile", "+trainer.profiler.dirpath=${paths.output_dir}",
        *device, *launcher,
    ]  # fmt: skip
    started = time.perf_counter()
    with GpuSampler() as sampler:
        result = subprocess.run(
            [sys.executable, "-m", "deepcovid.train", "-m", *overrides],
            capture_output=True, text=True,
        )  # fmt: skip
    train_seconds = time.perf_counter() - started
    (args.out / f"train-{mode}.log").write_text(result.stdout + result.stderr)
    report_started = time.perf_counter()
    reported = subprocess.run(
        [sys.executable, "-m", "deepcovid.report", str(sweep), "--no-wandb"],
        capture_output=True,
        text=True,
    )
    (args.out / f"report-{mode}.log").write_text(reported.stdout + reported.stderr)
    rows = []
    for job in sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[:1].isdigit()):
        metrics = job / "metrics" / "test.json"
        rows.append({
            "backbone": job.name.split("-", 1)[1],
            "seconds": log_seconds(job / "train.log") if (job / "train.log").is_file() else None,
            "data_wait_share": data_wait_share(job),
            "test_auroc": json.loads(metrics.read_text())["auroc"] if metrics.is_file() else None,
        })  # fmt: skip
    return {
        "mode": mode,
        "epochs": epochs,
        "jobs_at_once": args.jobs,
        "train_exit": result.returncode,
        "train_error": result.stderr[-1500:] if result.returncode else None,
        "sweep_seconds": round(train_seconds, 1),
        "report_exit": reported.returncode,
        "report_error": reported.stderr[-1500:] if reported.returncode else None,
        "report_seconds": round(time.perf_counter() - report_started, 1),
        "backbones": rows,
        **sampler.summary(),
    }


def markdown(runs: list[dict], counts: dict[str, int], device: str) -> str:
    """The runs as a table per mode."""
    lines = [f"device: {device}; images per folder: {counts}", ""]
    for run in runs:
        lines += [
            f"**finetune={run['mode']}, {run['epochs']} epochs, {run['jobs_at_once']} at once**: "
            f"sweep {run['sweep_seconds']} s (exit {run['train_exit']}), report "
            f"{run['report_seconds']} s (exit {run['report_exit']}), GPU utilisation mean "
            f"{run['gpu_util_mean']} %, memory max {run['gpu_memory_max_mib']} MiB",
            "",
        ]
        rows = [
            [
                r["backbone"],
                "—" if r["seconds"] is None else f"{r['seconds']:.1f}",
                "—" if r["data_wait_share"] is None else f"{100 * r['data_wait_share']:.1f} %",
                "—" if r["test_auroc"] is None else f"{r['test_auroc']:.3f}",
            ]
            for r in run["backbones"]
        ]
        lines += [table(["backbone", "job s", "data wait", "test AUROC"], rows), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--modes", nargs="+", default=["head:100"], help="finetune:epochs")
    parser.add_argument("--backbones", nargs="+", default=BACKBONES)
    parser.add_argument("--jobs", type=int, default=4, help="backbones trained at once")
    parser.add_argument("--workers", type=int, default=3, help="DataLoader workers per job")
    parser.add_argument("--scale", type=float, default=1.0, help="× COVID-Xray-5k's counts")
    parser.add_argument("--source-size", type=int, default=1024, help="image side, about (px)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DEEPCOVID_CACHE_DIR", str(args.out / "cache"))
    started = time.perf_counter()
    counts = write_dataset(args.out / "data", args.scale, args.source_size)
    print(f"wrote {sum(counts.values())} images in {time.perf_counter() - started:.1f} s")
    runs = []
    for spec in args.modes:
        mode, epochs = spec.split(":")
        runs.append(run_mode(args, args.out / "data", mode, int(epochs)))
        (args.out / "paper_protocol.json").write_text(json.dumps(runs, indent=2))
        text = markdown(runs, counts, args.device)
        (args.out / "paper_protocol.md").write_text(text)
        print(text, flush=True)
    return 0 if all(r["train_exit"] == 0 and r["report_exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
