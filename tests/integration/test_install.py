"""A wheel, installed non-editable into a folder of its own, runs from outside the repository
with the running environment's dependencies: its configs come with it (conf/ is packaged as
deepcovid.conf)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.conftest import REPO, make_covidx5k, tiny_overrides


def test_every_package_is_listed_for_the_wheel() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    folders = {module.parent for module in (REPO / "deepcovid").rglob("*.py")}
    assert not [f for f in folders if not (f / "__init__.py").is_file()]  # no namespace packages
    found = {".".join(folder.relative_to(REPO).parts) for folder in folders}
    assert listed == found | {"deepcovid.conf"}


def module_names() -> list[str]:
    """Every module of the package, by import name."""
    return sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for path in (REPO / "deepcovid").rglob("*.py")
    )


def run(args: list[str], cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``args`` in ``cwd`` with only ``path`` (if any) on PYTHONPATH; fail with its output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


LOCAL = {".git", ".venv", "build", "outputs", "multirun", "logs", "data", "wandb"}


def not_source(folder: str, names: list[str]) -> set[str]:
    """What a copy of the repository for building leaves out: run outputs at the top, caches."""
    top = LOCAL if Path(folder) == REPO else set()
    return {
        n for n in names if n in top or n == "__pycache__" or n.endswith((".egg-info", "_cache"))
    }


@pytest.mark.slow
def test_wheel_installs_and_trains_from_outside_the_repository(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: setuptools leaves build/ in the tree it builds
    shutil.copytree(REPO, source, ignore=not_source)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)], tmp_path)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("deepcovid-*.whl")
    # Installed into a folder of its own and run by this interpreter, so the dependencies are
    # those of the environment running the tests (a venv's or the system's), whichever it is:
    # a --system-site-packages venv would see the base interpreter's packages, not a venv's.
    site = tmp_path / "site"
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
         "--target", str(site), str(wheel)], tmp_path)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    imports = (  # every module, from the wheel: an unlisted package would come from the repo
        "import importlib, sys\n"
        "for name in sys.argv[1:]: print(importlib.import_module(name).__file__)"
    )
    where = run(
        [sys.executable, "-c", imports, *module_names(), "deepcovid.conf"], elsewhere, site
    ).stdout.split()
    assert len(where) == len(module_names()) + 1
    assert [path for path in where if not Path(path).is_relative_to(site)] == []  # not the repo's
    printed = run(
        [sys.executable, "-m", "deepcovid.train", "model=squeezenet", "--cfg", "job"],
        elsewhere,
        site,
    )
    assert "backbone: squeezenet" in printed.stdout
    data = make_covidx5k(tmp_path / "data")
    out = tmp_path / "run"
    overrides = tiny_overrides(
        data, out, "trainer.limit_train_batches=1", "metrics.bootstrap_resamples=10"
    )
    run(
        [sys.executable, "-m", "deepcovid.train", *overrides, f"hydra.run.dir={out}"],
        elsewhere,
        site,
    )
    assert (out / "checkpoints" / "last.ckpt").is_file() and (out / "report.md").is_file()
