"""python -m deepcovid.data.check: tables, JSON and the exit status."""

from __future__ import annotations

import json
from pathlib import Path

from deepcovid.data.check import EXIT_BAD_FILES, main
from tests.conftest import save_in_mode
from tests.data.test_leaks import leaky, texture  # noqa: F401 - the fixture


def test_cli_exit_status_and_json(leaky: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    out = tmp_path / "report.json"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main([str(leaky / "manifest.csv"), "--json", str(out), *cache]) == 1
    printed = capsys.readouterr().out
    assert "LEAK" in printed and "patients in several splits" in printed
    assert "implausible as chest radiographs (1)" in printed
    saved = json.loads(out.read_text())
    assert saved["leaks"]["exact_duplicates"] == 1 and saved["n_images"] == 16
    clean = tmp_path / "clean"
    for i in range(4):
        save_in_mode(texture(i), clean / ("train" if i < 2 else "test") / "covid" / f"{i}.png", "L")
    assert main([str(clean), "--json", str(tmp_path / "clean.json"), *cache]) == 0
    assert "no leak" in capsys.readouterr().out
    assert main([str(clean), "--fast", "--json", str(tmp_path / "fast.json"), *cache]) == 0
    assert json.loads((tmp_path / "fast.json").read_text())["near_duplicates"] is None


def test_cli_lists_files_not_read_and_fails_on_unreadable_ones(tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    for i in range(4):
        save_in_mode(texture(i), root / ("train" if i < 2 else "test") / "covid" / f"{i}.png", "L")
    (root / "train" / "covid" / "notes.txt").write_text("not an image")
    out, cache = tmp_path / "report.json", ["--cache-dir", str(tmp_path / "cache")]
    assert main([str(root), "--fast", "--json", str(out), *cache]) == 0  # listed, not an error
    assert list(json.loads(out.read_text())["not_read"]) == [str(root / "train/covid/notes.txt")]
    assert "files not read (1)" in capsys.readouterr().out
    (root / "test" / "covid" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert main([str(root), "--fast", "--json", str(out), *cache]) == EXIT_BAD_FILES
    assert (
        "dangling symlink"
        in json.loads(out.read_text())["not_read"][str(root / "test/covid/gone.png")]
    )
    (root / "test" / "covid" / "gone.png").unlink()
    (root / "test" / "covid" / "2.png").write_bytes(b"not a png")
    assert main([str(root), "--fast", "--json", str(out), *cache]) == EXIT_BAD_FILES
    assert list(json.loads(out.read_text())["unreadable"]) == [str(root / "test/covid/2.png")]
    assert "1 file(s) unreadable or broken links" in capsys.readouterr().out
