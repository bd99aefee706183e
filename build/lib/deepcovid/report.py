"""``python -m deepcovid.report DIR [DIR ...]``: compare evaluated runs (a multirun folder or
several run folders) in one Markdown + CSV table and one ROC and one PR overlay figure."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from deepcovid.results.comparison import write_comparison


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deepcovid.report", description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="run or multirun directories")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write comparison.{md,csv}, roc.png, pr.png "
        "(default: DIRS' common parent/comparison)",
    )
    parser.add_argument("--split", default="test", help="the evaluated split (default: test)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_args(argv)
    output = (
        args.output or Path(os.path.commonpath([d.resolve() for d in args.dirs])) / "comparison"
    )
    for kind, path in write_comparison(args.dirs, output, args.split).items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
