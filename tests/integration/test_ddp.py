"""DDP on CPU (gloo, 2 processes): metrics and files equal a 1-process run on the same weights.

The 2-rank runs go through the CLI in subprocesses (``trainer=ddp``, and ``trainer=slurm``
with the SLURM variables srun sets for 2 nodes × 1 task), as users run them.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest

from deepcovid.data.sampling import TrainingSampler
from deepcovid.models.checkpoints import load_classifier
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from deepcovid.utils.instantiate import instantiate_with
from tests.conftest import make_covidx5k, tiny_overrides

METRICS = ["auroc", "average_precision", "sensitivity", "specificity"]
# Odd split sizes, so a DistributedSampler over 2 ranks pads with a duplicate.
COUNTS = {"train/covid": 10, "train/non": 15, "test/covid": 7, "test/non": 8}
ON_CPU = ["trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.benchmark=false"]


def overrides(root: Path, out: Path, *extra: str) -> list[str]:
    """Tiny CPU run on the whole (small) training split, batches of 4."""
    return tiny_overrides(
        root,
        out,
        "data.batch_size=4",
        "data.val_fraction=0.25",
        "trainer.limit_train_batches=null",
        "print_config=false",
        *extra,
    )


def cli(out: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m deepcovid.train`` with its run directory at ``out``."""
    return subprocess.Popen(
        [sys.executable, "-m", "deepcovid.train", *args, f"hydra.run.dir={out}"],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(*processes: subprocess.Popen) -> None:
    """Wait for the processes; fail with their output if any failed."""
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-4000:]


# the CSV keys: val/* from the classifier, test/* from the evaluation (at the model's threshold)
KEYS = {
    "val": {name: f"val/{name}" for name in METRICS},
    "test": {
        "auroc": "test/auroc",
        "average_precision": "test/average_precision",
        "sensitivity": "test/fixed@0.2/sensitivity",
        "specificity": "test/fixed@0.2/specificity",
    },
}


def logged(out: Path, stage: str) -> dict[str, float]:
    """The last epoch-level ``stage/*`` metrics in the CSV logger's file."""
    frame = pd.read_csv(out / "csv" / "metrics.csv")
    rows = frame[frame[f"{stage}/auroc"].notna()]
    return {name: float(rows[key].iloc[-1]) for name, key in KEYS[stage].items()}


def assert_same_metrics(two: dict[str, float], one: dict[str, float]) -> None:
    for name in METRICS:
        assert math.isclose(two[name], one[name], abs_tol=1e-6) or (
            math.isnan(two[name]) and math.isnan(one[name])
        ), (name, two[name], one[name])


def assert_same_predictions(two: Path, one: Path) -> None:
    left, right = pd.read_csv(two), pd.read_csv(one)
    assert left["path"].is_unique and len(left) == COUNTS["test/covid"] + COUNTS["test/non"]
    assert left["path"].tolist() == right["path"].tolist()
    assert left["label"].tolist() == right["label"].tolist()
    np.testing.assert_allclose(left["prob_covid"], right["prob_covid"], atol=1e-6)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_covidx5k(tmp_path_factory.mktemp("ddp") / "covidx5k", COUNTS)


@pytest.fixture(scope="module")
def two_rank_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train one epoch and test with ``trainer=ddp`` on 2 CPU processes, both ranks reading
    (and at first building, at the same time) the preprocessed cache."""
    out = tmp_path_factory.mktemp("ddp") / "two"
    cache = ["data.cache=true", f"data.cache_dir={out.parent / 'cache'}"]
    finish(cli(out, overrides(data, out, "trainer=ddp", "trainer.devices=2", *ON_CPU, *cache)))
    return out


@pytest.mark.slow
def test_two_rank_metrics_and_predictions_equal_one_rank(
    data: Path, two_rank_run: Path, tmp_path: Path
) -> None:
    checkpoint = two_rank_run / "checkpoints" / "last.ckpt"
    one = tmp_path / "one"
    cfg = compose_config(
        "train", overrides(data, one, "train=false", f"ckpt_path={checkpoint}"), str(one)
    )
    train(cfg)
    assert_same_metrics(logged(two_rank_run, "test"), logged(one, "test"))
    assert_same_predictions(
        two_rank_run / "predictions" / "test.csv", one / "predictions" / "test.csv"
    )

    # Validation: the 2-rank epoch-end val metrics were computed with last.ckpt's weights.
    model = load_classifier(checkpoint)
    datamodule = instantiate_with(cfg.data, preprocessing=model.record.preprocessing)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    trainer.validate(model, datamodule=datamodule)
    n_val = len(datamodule.split("val"))
    assert n_val % 2 == 1  # the 2-rank run padded its val set
    val_metrics = {k: float(trainer.callback_metrics[f"val/{k}"]) for k in METRICS}
    assert_same_metrics(logged(two_rank_run, "val"), val_metrics)


@pytest.mark.slow
def test_two_rank_training_splits_the_oversampled_epoch(data: Path, two_rank_run: Path) -> None:
    import torch

    cfg = compose_config("train", overrides(data, two_rank_run), str(two_rank_run))
    datamodule = instantiate_with(cfg.data)
    labels = datamodule.split("train")["label"]
    plan = len(labels) + (cfg.data.oversample_factor - 1) * int(labels.sum())  # COVID × 5
    per_rank = math.ceil(plan / 2)
    state = torch.load(two_rank_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == math.ceil(per_rank / cfg.data.batch_size)  # half each


@pytest.mark.slow
def test_two_rank_files_are_written_once(data: Path, two_rank_run: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    finish(cli(one, overrides(data, one)))
    (packed,) = (two_rank_run.parent / "cache").glob("*.u8")  # both ranks, one cache
    assert packed.stat().st_size == 40 * 64 * 64  # every image once (64 px: under the 256 px side)
    # Rank 1 only adds its own Hydra log (Lightning relaunches it with hydra.job.name set).
    assert files_under(two_rank_run) == files_under(one) | {"train_ddp_process_1.log"}
    assert not list(two_rank_run.glob("csv/version_*"))
    assert sorted(p.name for p in (two_rank_run / "checkpoints").iterdir()) == [
        "best-epoch000.ckpt",
        "last.ckpt",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_slurm_two_nodes_match_one_rank(data: Path, two_rank_run: Path, tmp_path: Path) -> None:
    """What srun starts for ``--nodes=2 --ntasks-per-node=1``, emulated on this machine."""
    checkpoint = two_rank_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "slurm"
    # trainer=slurm reads devices (1) and num_nodes (2) from the SLURM variables.
    args = overrides(data, out, "trainer=slurm", *ON_CPU, "train=false", f"ckpt_path={checkpoint}")
    common = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "deepcovid-test",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "2",
        "SLURM_NODELIST": "localhost",
        "SLURM_LOCALID": "0",
        "MASTER_PORT": str(free_port()),
    }
    ranks = [
        cli(out, args, {**common, "SLURM_PROCID": str(rank), "SLURM_NODEID": str(rank)})
        for rank in (0, 1)
    ]
    finish(*ranks)
    assert_same_predictions(
        out / "predictions" / "test.csv", two_rank_run / "predictions" / "test.csv"
    )
    assert_same_metrics(logged(out, "test"), logged(two_rank_run, "test"))


def test_oversampling_sampler_gives_each_rank_a_disjoint_share() -> None:
    labels = [1] * 7 + [0] * 30  # COVID is the minority: drawn 5 times
    dataset = list(range(len(labels)))
    shares = [
        [position for position, _ in TrainingSampler(dataset, labels, 5, 2, r, seed=3)]
        for r in (0, 1)
    ]
    plan = Counter({i: 5 if labels[i] else 1 for i in dataset})
    assert len(shares[0]) == len(shares[1]) == math.ceil(sum(plan.values()) / 2)
    together = Counter(shares[0]) + Counter(shares[1])
    assert all(together[i] >= n for i, n in plan.items())  # every draw of the plan is made
    assert (together - plan).total() == 2 * len(shares[0]) - plan.total() == 1  # + 1 padding
    expected = 35 / 65  # COVID draws / all draws
    for share in shares:
        ratio = np.mean([labels[i] for i in share])
        assert abs(ratio - expected) < 0.2
    reseeded = TrainingSampler(dataset, labels, 5, num_replicas=2, rank=0, seed=3)
    reseeded.set_epoch(1)
    assert [position for position, _ in reseeded] != shares[0]  # a new order every epoch
