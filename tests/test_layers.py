"""The layer contract (pyproject.toml, [tool.importlinter]): every module has a layer, and
lint-imports keeps the contract (no upward import, no import circle inside a package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def layer_modules() -> list[str]:
    """Every module or package named in a layer of the layers contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    names = []
    for layer in layers["layers"]:
        for name in layer.replace(":", "|").split("|"):
            names.append(name.strip().strip("()"))
    return names


def test_every_module_of_the_package_has_a_layer() -> None:
    layered = layer_modules()
    unplaced = []
    for path in sorted((ROOT / "deepcovid").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module.endswith("__init__"):
            continue
        if not any(module == name or module.startswith(name + ".") for name in layered):
            unplaced.append(module)
    assert not unplaced, f"modules in no layer of pyproject.toml's [tool.importlinter]: {unplaced}"


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="pip install import-linter")
def test_lint_imports_keeps_the_layer_contract() -> None:
    done = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
