"""The benchmark scripts run end to end with tiny settings (no timing asserts: speed is what
they print, recorded in benchmarks/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import dataloader, gpu, throughput

HEAVY = ["pandas", "hydra", "omegaconf", "wandb", "sklearn", "scipy", "matplotlib", "lightning"]


def test_dataloader_compares_both_pipelines(covidx5k_shared: Path, capsys) -> None:
    args = ["--root", str(covidx5k_shared), "--seconds", "0", "--workers", "0"]
    assert (
        dataloader.main([*args, "--batch-size", "4", "--image-size", "32", "--short-side", "40"])
        == 0
    )
    out = capsys.readouterr().out
    assert "50 images" in out and "ImageFolder + PIL" in out and "deepcovid cache" in out
    assert "ratio cached / ImageFolder + PIL:" in out


def test_dataloader_skips_without_data(tmp_path: Path, capsys) -> None:
    assert dataloader.main(["--root", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_throughput_prints_both_paths_and_the_overhead(capsys) -> None:
    args = ["--device", "cpu", "--backbones", "squeezenet", "--image-size", "32"]
    assert throughput.main([*args, "--batch-size", "2", "--steps", "1", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    assert "| squeezenet | train |" in out and "| squeezenet | inference |" in out
    assert "largest Lightning overhead" in out


@pytest.mark.slow
def test_gpu_benchmark_runs_on_cpu_and_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    args = ["--device", "cpu", "--backbones", "squeezenet", "--steps", "1", "--batch-size", "2"]
    tiny = ["--images", "2", "--source-size", "300", "--image-size", "32", "--workers", "0"]
    assert gpu.main([*args, *tiny, "--out", str(out)]) == 0
    assert "| squeezenet |" in out.read_text()
    results = json.loads(out.with_suffix(".json").read_text())["results"]["squeezenet"]
    assert set(results) == set(gpu.COLUMNS) and all(v > 0 for v in results.values())


def test_gpu_benchmark_imports_nothing_heavy() -> None:
    """GPU machines may lack pandas, Hydra, W&B…: benchmarks/gpu.py must not need them."""
    code = f"import sys, benchmarks.gpu; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_occlusion_benchmark_quick_run_reports_every_method() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/occlusion.py", "--quick", "--threads", "1"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    for method in ("captum", "captum-batched", "plain", "incremental"):
        assert method in rows, method
    # the exact paths agree with Captum (max error column) to within 1e-5
    for method in ("plain", "incremental"):
        assert float(rows[method][5]) < 1e-5
    assert "layer account of incremental inference" in result.stdout


def test_audit_benchmark_prints_the_ratio(covidx5k_shared: Path, capsys) -> None:
    from benchmarks import audit

    args = ["--root", str(covidx5k_shared), "--images", "3", "--image-size", "32"]
    assert audit.main([*args, "--window", "16", "--stride", "16", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 images at 32 px" in out and "ratio audit / occlusion pass:" in out


@pytest.mark.slow
def test_startup_benchmark_times_first_and_second_runs(covidx5k_shared: Path, tmp_path, capsys):
    from benchmarks import startup

    originals = tmp_path / "originals"
    originals.mkdir()
    for k, path in enumerate(sorted(covidx5k_shared.rglob("*.png"))[:3]):
        (originals / f"{k}.png").write_bytes(path.read_bytes())
    out_file = tmp_path / "startup.json"
    assert (
        startup.main(["--counts", "40", "--originals", str(originals), "--out", str(out_file)]) == 0
    )
    (row,) = json.loads(out_file.read_text())["rows"]
    assert row["files"] == 40 and row["checkout"] == "this checkout"
    assert row["first_s"] > 0 and row["second_s"] > 0
