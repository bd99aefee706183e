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
design: their perceptual hashes are close), ``--jobs`` training processes at a time on the one
GPU. Per backbone: its process's wall time (start-up, data check, 100 epochs, final test and
evaluation), the epochs it finished (a job still running after ``--time-limit`` s is stopped
with SIGTERM, as a cluster's time limit would), and the share of training-loop time spent
waiting for the next batch (Lightning's SimpleProfiler). Over the
sweep: wall time and GPU utilisation sampled by ``nvidia-smi`` every 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from benchmarks.gpu import radiograph
from deepcovid.results.markdown import table

BACKBONES = ["resnet18", "resnet50", "squeezenet", "densenet121"]
COUNTS = {"train/covid": 84, "train/non": 2000, "test/covid": 100, "test/non": 3000}


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


def epochs_done(job: Path) -> int | None:
    """Training epochs the job's CSV log recorded a validation for."""
    metrics = job / "csv" / "metrics.csv"
    if not metrics.is_file():
        return None
    frame = pd.read_csv(metrics)
    if "val/auroc" not in frame or "epoch" not in frame:
        return None
    return int(frame.dropna(subset=["val/auroc"])["epoch"].nunique())


def run_mode(args: argparse.Namespace, data: Path, mode: str, epochs: int) -> dict:
    """The backbones in ``mode`` (head | full), ``--jobs`` training processes at a time (as
    in several shells: on the H200 machine, Hydra's joblib launcher could not start DataLoader
    workers inside its loky processes), each stopped by SIGTERM after ``--time-limit`` s; then
    report."""
    sweep = args.out / f"sweep-{mode}"
    shutil.rmtree(sweep, ignore_errors=True)
    device = (
        ["trainer=gpu", "model.channels_last=true"]
        if args.device == "cuda"
        else ["trainer=cpu", "trainer.precision=32-true"]
    )
    overrides = [
        "experiment=deepcovid_paper", "model.pretrained=false", f"model.finetune={mode}",
        f"trainer.max_epochs={epochs}", f"data.root={data}", "data.near_duplicates=false",
        "data.cache=true", "data.normalize_on_device=true", f"data.num_workers={args.workers}",
        "trainer.enable_progress_bar=false", "logger=csv", "print_config=false",
        "+trainer.profiler._target_=lightning.pytorch.profilers.SimpleProfiler",
        "+trainer.profiler.filename=profile", "+trainer.profiler.dirpath=${paths.output_dir}",
        *device,
    ]  # fmt: skip
    jobs = [sweep / f"{i}-{backbone}" for i, backbone in enumerate(args.backbones)]
    seconds: dict[Path, float] = {}
    exits: dict[Path, int] = {}
    started = time.perf_counter()
    with GpuSampler() as sampler:
        waiting = list(zip(args.backbones, jobs, strict=True))
        running: dict[Path, tuple[subprocess.Popen, float]] = {}
        while waiting or running:
            while waiting and len(running) < args.jobs:
                backbone, job = waiting.pop(0)
                job.mkdir(parents=True)
                command = [sys.executable, "-m", "deepcovid.train", f"model={backbone}",
                           f"hydra.run.dir={job}", *overrides]  # fmt: skip
                with (job / "stdout.log").open("w") as log:
                    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
                running[job] = (process, time.perf_counter())
            for job, (process, t0) in list(running.items()):
                overdue = time.perf_counter() - started > args.time_limit
                if overdue and process.poll() is None:
                    process.send_signal(signal.SIGTERM)  # deepcovid saves and exits 143
                    process.wait()
                if process.poll() is not None:
                    seconds[job], exits[job] = time.perf_counter() - t0, process.returncode
                    del running[job]
            time.sleep(0.5)
    train_seconds = time.perf_counter() - started
    report_started = time.perf_counter()
    reported = subprocess.run(
        [sys.executable, "-m", "deepcovid.report", str(sweep), "--no-wandb"],
        capture_output=True, text=True,
    )  # fmt: skip
    (args.out / f"report-{mode}.log").write_text(reported.stdout + reported.stderr)
    rows = []
    for backbone, job in zip(args.backbones, jobs, strict=True):
        metrics = job / "metrics" / "test.json"
        rows.append({
            "backbone": backbone,
            "exit": exits.get(job),
            "seconds": round(seconds[job], 1) if job in seconds else None,
            "epochs_done": epochs_done(job),
            "data_wait_share": data_wait_share(job),
            "test_auroc": json.loads(metrics.read_text())["auroc"] if metrics.is_file() else None,
        })  # fmt: skip
    return {
        "mode": mode,
        "epochs": epochs,
        "jobs_at_once": args.jobs,
        "time_limit": args.time_limit,
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
            f"all jobs {run['sweep_seconds']} s (limit {run['time_limit']} s), report "
            f"{run['report_seconds']} s (exit {run['report_exit']}), GPU utilisation mean "
            f"{run['gpu_util_mean']} %, memory max {run['gpu_memory_max_mib']} MiB",
            "",
        ]
        rows = [
            [
                r["backbone"],
                str(r["exit"]),
                f"{r['epochs_done']} of {run['epochs']}",
                "—" if r["seconds"] is None else f"{r['seconds']:.1f}",
                "—" if r["data_wait_share"] is None else f"{100 * r['data_wait_share']:.1f} %",
                "—" if r["test_auroc"] is None else f"{r['test_auroc']:.3f}",
            ]
            for r in run["backbones"]
        ]
        header = ["backbone", "exit", "epochs", "job s", "data wait", "test AUROC"]
        lines += [table(header, rows), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--modes", nargs="+", default=["head:100"], help="finetune:epochs")
    parser.add_argument("--backbones", nargs="+", default=BACKBONES)
    parser.add_argument("--jobs", type=int, default=4, help="backbones trained at once")
    parser.add_argument("--time-limit", type=float, default=3600.0, help="then SIGTERM (s)")
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
    finished = all(row["exit"] == 0 for run in runs for row in run["backbones"])
    return 0 if finished and all(run["report_exit"] == 0 for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
