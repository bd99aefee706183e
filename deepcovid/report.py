"""``python -m deepcovid.report [DIR ...]``: compare evaluated runs (a multirun folder or
several run folders; default: the newest training multirun) in one report: per-run table,
per model the spread of its runs' AUROC and their mean-score ensemble on the unique test
images, each fold's out-of-fold AUROC (and whether its checkpoint was chosen on those images),
paired tests between models, the leave-one-source-out table (those runs in no model's numbers),
and ROC (with bands), PR and forest figures. Each run's status says
whether its results are complete, stale (a checkpoint of the run is newer than them) or of an
interrupted checkpoint (deepcovid/results/status.py)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from deepcovid.results.comparison import write_comparison
from deepcovid.utils.tracking import log_files_run

MULTIRUNS = Path("outputs/train/multiruns")


def newest_multirun(parent: Path = MULTIRUNS) -> Path:
    """The newest folder in ``parent`` (multirun folders are named by their start time)."""
    found = sorted(p for p in parent.glob("*") if p.is_dir()) if parent.is_dir() else []
    if not found:
        raise SystemExit(
            f"no run folders given and none in {parent}: pass run or multirun folders, e.g. "
            "`python -m deepcovid.report outputs/train/multiruns/2026-12-01_10-00-00`"
        )
    return found[-1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deepcovid.report", description=__doc__)
    parser.add_argument(
        "dirs",
        nargs="*",
        type=Path,
        help=f"run or multirun folders (default: newest in {MULTIRUNS})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the comparison (default: comparison/ in the folders' common path, "
        "i.e. in the folder itself when there is one)",
    )
    parser.add_argument("--split", default="test", help="the evaluated split (default: test)")
    parser.add_argument(
        "--bootstrap-resamples",
        "--resamples",  # the former name, still read
        dest="bootstrap_resamples",
        type=int,
        default=1000,
        help="bootstrap resamples of pooled and paired intervals (as metrics.bootstrap_resamples)",
    )
    parser.add_argument(
        "--no-wandb", action="store_true", help="do not log the table to a W&B report run"
    )
    parser.add_argument(
        "--mlflow",
        metavar="TRACKING_URI",
        default=None,
        help="also log the comparison's files to an MLflow run '<folder>-report' there "
        "(e.g. file:outputs/train/multiruns/X/mlruns, http://host:5000)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_args(argv)
    dirs = args.dirs or [newest_multirun()]
    output = args.output or Path(os.path.commonpath([d.resolve() for d in dirs])) / "comparison"
    written = write_comparison(
        dirs, output, args.split, args.bootstrap_resamples, wandb=not args.no_wandb
    )
    for kind, path in written.items():
        print(f"{kind}: {path}")
    if args.mlflow:
        run_id = log_files_run(args.mlflow, f"{output.parent.name}-report", written.values())
        print(f"mlflow: run {run_id} in {args.mlflow}")


if __name__ == "__main__":
    main()
