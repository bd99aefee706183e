"""Sweeps through Hydra launchers: SLURM (submitit, submission checked with a stand-in sbatch),
submitit_local and joblib (run here), and the trainer configs they pair with."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.conftest import CONFIG_DIR, tiny_overrides

LAUNCHERS = ["submitit_slurm", "submitit_local", "joblib", "slurm"]
TRAINERS = sorted(p.stem for p in (Path(CONFIG_DIR) / "trainer").glob("*.yaml"))


def compose_with_hydra(overrides: list[str]):
    """The config with its ``hydra`` node (launcher settings), as a CLI run sees it."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides, return_hydra_config=True)
    cfg.paths.output_dir = "outputs/test"  # ${hydra:runtime.output_dir} exists in CLI runs only
    return cfg


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("trainer", TRAINERS)
def test_every_launcher_composes_with_every_trainer(launcher: str, trainer: str) -> None:
    cfg = compose_with_hydra([f"hydra/launcher={launcher}", f"trainer={trainer}"])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["_target_"].startswith("hydra_plugins.")
    OmegaConf.to_container(cfg.trainer, resolve=True)


def test_slurm_launcher_asks_for_what_the_trainer_uses() -> None:
    cfg = compose_with_hydra(
        ["hydra/launcher=slurm", "trainer=slurm", "trainer.devices=4", "trainer.num_nodes=2"]
    )
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.accelerator == "gpu"


def test_slurm_trainer_reads_the_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "8")
    monkeypatch.setenv("SLURM_NNODES", "3")
    cfg = compose_with_hydra(["trainer=slurm"])
    assert (cfg.trainer.devices, cfg.trainer.num_nodes) == (8, 3)


def sweep(sweep_dir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True):
    """``python -m deepcovid.train -m ...`` with its sweep directory at ``sweep_dir``."""
    result = subprocess.run(
        [sys.executable, "-m", "deepcovid.train", "-m", *args, f"hydra.sweep.dir={sweep_dir}"],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.slow
def test_slurm_sweep_submits_one_array_job_per_sweep(tmp_path: Path) -> None:
    """Stand-in ``sbatch`` (keeps the script, then fails) and ``srun`` (submitit checks it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    captured = tmp_path / "sbatch.sh"
    executable(
        bin_dir / "sbatch",
        f'#!/bin/sh\nfor a in "$@"; do case "$a" in *.sh) cp "$a" {captured};; esac; done\n'
        'echo "stand-in sbatch: not submitted" >&2\nexit 1\n',
    )
    executable(bin_dir / "srun", "#!/bin/sh\nexit 1\n")
    result = sweep(
        tmp_path / "sweep",
        "model=resnet18,squeezenet",
        "trainer=slurm",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        check=False,
    )
    assert "stand-in sbatch: not submitted" in result.stderr
    script = captured.read_text()
    for line in [
        "#SBATCH --array=0-1",  # both sweep points in one array job
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",  # one task per GPU, as Lightning's SLURM support wants
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=720",
    ]:
        assert line in script, script
    assert "srun" in script and "submitit.core._submit" in script


def assert_jobs_trained(sweep_dir: Path, backbones: list[str]) -> None:
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [j.name for j in jobs] == [f"{i}-{m}" for i, m in enumerate(backbones)]
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        assert len(pd.read_csv(job / "predictions" / "test.csv")) == 14


@pytest.mark.slow
def test_submitit_local_sweep_runs(covidx5k_shared: Path, tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    overrides = tiny_overrides(covidx5k_shared, sweep_dir, "print_config=false")
    sweep(sweep_dir, "model=resnet18", "hydra/launcher=submitit_local", *overrides)
    assert_jobs_trained(sweep_dir, ["resnet18"])
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl"))  # ran as a submitit job


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_parallel_sharing_one_cache(
    covidx5k_shared: Path, tmp_path: Path
) -> None:
    sweep_dir = tmp_path / "sweep"
    cache_dir = tmp_path / "cache"
    overrides = tiny_overrides(covidx5k_shared, sweep_dir, "print_config=false")
    sweep(
        sweep_dir,
        "model=resnet18,squeezenet",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "data.cache=true",
        f"data.cache_dir={cache_dir}",
        *overrides,
    )
    assert_jobs_trained(sweep_dir, ["resnet18", "squeezenet"])
    # Both jobs started at once on the same files: one packed file, every image in it once.
    (packed,) = cache_dir.glob("*.u8")
    assert packed.stat().st_size == 50 * 64 * 64
