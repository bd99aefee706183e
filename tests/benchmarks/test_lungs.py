"""benchmarks/lungs.py runs end to end with tiny settings (speed is printed, not asserted)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import lungs


def test_lung_benchmark_prints_both_rows(tmp_path: Path, capsys) -> None:
    args = ["--images", "3", "--batch-size", "2", "--root", str(tmp_path / "absent")]
    assert lungs.main(args) == 0
    out = capsys.readouterr().out
    assert "3 images from generated 256x256" in out
    assert "| segment_batch (all steps) |" in out and "| resize + network forward only |" in out
