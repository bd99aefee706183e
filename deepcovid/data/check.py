"""``python -m deepcovid.data.check ROOT_OR_MANIFEST``: counts, image modes and sizes,
unreadable and implausible files, images that are not frontal chest radiographs
(:mod:`deepcovid.scope`), and leaks across splits (identical or near-identical images,
shared patients), as console tables and a JSON file; files a folder scan does not read (broken
links, other types) are listed by name. Exits 1 when the splits leak, else 2 when files are
unreadable or broken links, else 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from deepcovid.data.cache import HASH_SIZE, FileCache, default_cache_dir
from deepcovid.data.io import DEFAULT_MAX_IMAGE_PIXELS, set_max_image_pixels
from deepcovid.data.leaks import MAX_DISTANCE, DataReport, leak_report
from deepcovid.data.samples import UNSUPPORTED, read_manifest, scan_folders
from deepcovid.scope.check import VerdictStore, load_checker
from deepcovid.utils.files import printable, write_json_atomic

EXIT_LEAK = 1
EXIT_BAD_FILES = 2


def load_samples(
    root_or_manifest: str | Path, skipped: dict[str, str] | None = None
) -> pd.DataFrame:
    """The sample table of a CSV manifest, a folder with ``manifest.csv``, or a folder tree
    (whose files not read are added to ``skipped``)."""
    path = Path(root_or_manifest)
    if path.is_file():
        return read_manifest(path)
    if (path / "manifest.csv").is_file():
        return read_manifest(path / "manifest.csv")
    return scan_folders(path, skipped=skipped)


def broken_links(skipped: dict[str, str]) -> dict[str, str]:
    """The skipped files that are broken links or unreadable (not merely of another type)."""
    return {p: why for p, why in skipped.items() if not why.startswith(UNSUPPORTED)}


def table_of(title: str, columns: list[str], rows: list[list[object]]) -> Table:
    """A rich table with the given columns and rows."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row))
    return table


def render(
    report: DataReport,
    skipped: dict[str, str],
    console: Console,
    limit: int = 20,
    not_frontal: dict[str, str] | None = None,
) -> None:
    """Print the report, the images out of scope and the files not read as tables, then the
    verdict."""
    counts = [[r["split"], r["class"], r["source"], r["images"]] for r in report.counts]
    console.print(table_of("images", ["split", "class", "source", "images"], counts))
    console.print(table_of("modes", ["mode", "images"], [list(m) for m in report.modes.items()]))
    sizes = [[axis, *s.values()] for axis, s in report.sizes.items()]
    console.print(table_of("sizes (px)", ["axis", "min", "median", "max"], sizes))
    if report.implausible:
        rows = [[p, why] for p, why in list(report.implausible.items())[:limit]]
        title = f"implausible as chest radiographs ({len(report.implausible)})"
        console.print(table_of(title, ["file", "why"], rows))
    if report.unreadable:
        rows = [[p, why] for p, why in list(report.unreadable.items())[:limit]]
        console.print(
            table_of(f"unreadable files ({len(report.unreadable)})", ["file", "why"], rows)
        )
    if not_frontal:
        rows = [[p, why] for p, why in list(not_frontal.items())[:limit]]
        title = (
            f"not frontal chest radiographs ({len(not_frontal)}; training leaves them out, "
            "data.out_of_scope)"
        )
        console.print(table_of(title, ["file", "why"], rows))
    if skipped:
        rows = [[p, why] for p, why in list(skipped.items())[:limit]]
        console.print(table_of(f"files not read ({len(skipped)})", ["file", "why"], rows))
    if report.exact_duplicates:
        rows = [[g["sha256"][:12], g["paths"]] for g in report.exact_duplicates[:limit]]
        title = f"identical files across splits ({len(report.exact_duplicates)})"
        console.print(table_of(title, ["sha256", "files"], rows))
    if report.near_duplicates:
        pairs = report.near_duplicates[:limit]
        rows = [[p["distance"], {k: v for k, v in p.items() if k != "distance"}] for p in pairs]
        title = f"near-duplicates across splits ({len(report.near_duplicates)})"
        console.print(table_of(title, ["bits", "files"], rows))
    if report.patients_in_several_splits:
        rows = [[p, s] for p, s in list(report.patients_in_several_splits.items())[:limit]]
        title = f"patients in several splits ({len(report.patients_in_several_splits)})"
        console.print(table_of(title, ["patient", "splits"], rows))
    if report.leaks:
        console.print(f"[bold red]LEAK[/]: {report.leaks}")
    else:
        console.print("[bold green]no leak[/] across splits")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deepcovid.data.check", description=__doc__)
    parser.add_argument("root_or_manifest", help="dataset folder or CSV manifest")
    parser.add_argument("--json", default="data_check.json", help="where to write the report")
    parser.add_argument(
        "--fast", action="store_true", help="skip the near-duplicate search (no dHash)"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where the facts of each file are kept, so unchanged files are not read again "
        "(default: $DEEPCOVID_CACHE_DIR or ~/.cache/deepcovid, as data.cache_dir of training)",
    )
    parser.add_argument(
        "--max-distance",
        type=int,
        default=MAX_DISTANCE,
        help=f"near-duplicate threshold in bits of the {HASH_SIZE * HASH_SIZE}-bit dHash",
    )
    parser.add_argument("--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS)
    parser.add_argument(
        "--no-scope-check",
        action="store_true",
        help="skip the check that each image is a frontal chest radiograph",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the check; the exit status is 1 when the splits leak, else 2 when files are
    unreadable or broken links, else 0."""
    args = parse_args(argv)
    set_max_image_pixels(args.max_image_pixels)
    skipped: dict[str, str] = {}
    table = load_samples(args.root_or_manifest, skipped)
    cache = FileCache(args.cache_dir or default_cache_dir())
    scope = None if args.no_scope_check else VerdictStore(cache.directory, load_checker())
    facts = cache.scan(table["path"].tolist(), want_dhash=not args.fast, probe=scope)
    report = leak_report(table, facts, near=not args.fast, max_distance=args.max_distance)
    not_frontal = {}
    if scope is not None:
        readable = {p: facts[p].sha256 for p in table["path"] if facts[p].readable}
        verdicts, _ = scope.verdicts(readable)
        not_frontal = {printable(p): v.reason for p, v in verdicts.items() if not v.in_scope}
    render(report, skipped, Console(), not_frontal=not_frontal)
    write_json_atomic(
        {**report.to_dict(), "out_of_scope": not_frontal, "not_read": skipped}, args.json
    )
    print(f"report written to {args.json}")
    if report.leaks:
        return EXIT_LEAK
    bad = len(report.unreadable) + len(broken_links(skipped))
    if bad:
        print(f"{bad} file(s) unreadable or broken links (listed above): fix or remove them")
        return EXIT_BAD_FILES
    return 0


if __name__ == "__main__":
    sys.exit(main())
