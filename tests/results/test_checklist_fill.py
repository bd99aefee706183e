"""checklist.md as filled from a run's files: its numbers are the run's own
(cross-checked against the predictions, metrics and checkpoint), every citation names a file
the run holds, and what no run records is left for the author."""

from __future__ import annotations

import json
import re
from pathlib import Path

from deepcovid.report import main as report_main
from deepcovid.results.checklist import ITEMS
from deepcovid.results.checklist_fill import FOR_AUTHOR
from deepcovid.results.markdown import percent
from deepcovid.utils.files import sha256_of
from tests.conftest import best_checkpoint


def section(markdown: str, guideline: str, number: str) -> str:
    """The text of one item of checklist.md."""
    start = markdown.index(f"### {guideline} {number}: ")
    end = markdown.find("\n### ", start + 1)
    return markdown[start : end if end != -1 else None]


def cited_files(markdown: str) -> set[str]:
    """Every file named in a "(from `a`, `b`)" citation, without its "(record…)" suffix."""
    found = set()
    for group in re.findall(r"\(from (`[^\n]*?`)\)", markdown):
        for name in re.findall(r"`([^`]+)`", group):
            found.add(re.sub(r" \(record[^)]*\)$", "", name))
    return found


def test_checklist_of_the_run_is_cross_checked_against_its_files(tiny_run: Path) -> None:
    markdown = (tiny_run / "checklist.md").read_text()
    metrics = json.loads((tiny_run / "metrics" / "test.json").read_text())
    counts = metrics["counts"]
    for item in ITEMS:  # every item, in the published numbering, filled or for the author
        text = section(markdown, item.guideline, item.number)
        assert (FOR_AUTHOR in text) != bool(re.search(r"\(from `", text)), text
    size = section(markdown, "TRIPOD+AI 2024", "10")
    assert f"holds {counts['n']} images ({counts['n_positive']} COVID" in size
    performance = section(markdown, "CLAIM 2024", "38")
    point = next(p for p in metrics["chosen_points"] if p["threshold"] is not None)
    c = point["counts"]
    assert f"sensitivity {percent(point['sensitivity'])} ({c['tp']}/{c['tp'] + c['fn']}" in (
        performance
    )
    assert f"P(COVID) ≥ {point['threshold']:.4g}" in performance
    assert f"{counts['n']} images ({counts['n_positive']} COVID" in performance
    checkpoint = best_checkpoint(tiny_run)
    assert f"(sha256 {sha256_of(checkpoint)})" in section(markdown, "TRIPOD+AI 2024", "22")
    assert "table1.md" in section(markdown, "CLAIM 2024", "36")
    seed = f"Seed {metrics['model']['seed']}"
    assert seed in section(markdown, "TRIPOD+AI 2024", "12a")
    assert "no patient ids" in section(markdown, "CLAIM 2024", "20")  # generated data has none
    assert FOR_AUTHOR in section(markdown, "TRIPOD+AI 2024", "17")  # ethics: never recorded
    for name in cited_files(markdown):
        assert (tiny_run / name).exists(), name


def test_report_writes_one_checklist_citing_each_runs_files(tiny_run: Path, tmp_path: Path):
    out = tmp_path / "comparison"
    report_main([str(tiny_run), "--output", str(out), "--resamples", "20", "--no-wandb"])
    markdown = (out / "checklist.md").read_text()
    metrics = json.loads((tiny_run / "metrics" / "test.json").read_text())
    assert f"holds {metrics['counts']['n']} images" in section(markdown, "TRIPOD+AI 2024", "10")
    names = cited_files(markdown)
    assert names and all(n.startswith("../") or Path(n).is_absolute() for n in names)
    for name in names:
        assert (out / name).exists(), name
