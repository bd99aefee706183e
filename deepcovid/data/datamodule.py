"""LightningDataModule for chest X-ray folders and CSV manifests."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader

from deepcovid.data.dataset import XrayDataset
from deepcovid.data.download import download_dataset
from deepcovid.data.io import DEFAULT_MAX_IMAGE_PIXELS, set_max_image_pixels
from deepcovid.data.samples import (
    DEFAULT_NEGATIVE_NAMES,
    DEFAULT_POSITIVE_NAMES,
    SPLITS,
    LabelMap,
    read_manifest,
    scan_folders,
)
from deepcovid.data.sampling import BALANCE_MODES, OversamplingSampler, inverse_frequency_weights
from deepcovid.data.splits import assign_splits, patients_in_several_splits
from deepcovid.data.transforms import EvalPreset, TrainPreset
from deepcovid.data.validate import BadFilesError, describe, find_unreadable

log = logging.getLogger(__name__)
Transform = Callable[[Image.Image], torch.Tensor]
ON_BAD_FILE = ("error", "skip")


class XrayDataModule(L.LightningDataModule):
    """Train/val/test loaders over a COVID-Xray-5k folder, class folders or a CSV manifest.

    ``batch_size`` is per device: under DDP with N devices a step sees N × batch_size images.
    """

    def __init__(
        self,
        root: str,
        manifest: str | None = "auto",
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 42,
        image_size: int = 224,
        batch_size: int = 20,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        balance: str = "oversample",
        oversample_factor: int = 5,
        positive_names: Sequence[str] = DEFAULT_POSITIVE_NAMES,
        negative_names: Sequence[str] = DEFAULT_NEGATIVE_NAMES,
        train_transform: Transform | None = None,
        eval_transform: Transform | None = None,
        download: bool = False,
        download_url: str | None = None,
        download_sha256: str | None = None,
        on_bad_file: str = "error",
        validate_files: bool = True,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        super().__init__()
        if balance not in BALANCE_MODES:
            raise ValueError(f"data.balance={balance!r}; choose one of {list(BALANCE_MODES)}")
        if on_bad_file not in ON_BAD_FILE:
            raise ValueError(f"data.on_bad_file={on_bad_file!r}; choose one of {list(ON_BAD_FILE)}")
        self.root = Path(root)
        self.manifest = manifest
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.balance = balance
        self.oversample_factor = oversample_factor
        self.labels = LabelMap(positive_names, negative_names)
        self.image_size = image_size
        self.train_transform = train_transform or TrainPreset(image_size)
        self.eval_transform = eval_transform or EvalPreset(image_size)
        self.download = download
        self.download_url = download_url
        self.download_sha256 = download_sha256
        self.on_bad_file = on_bad_file
        self.validate_files = validate_files
        set_max_image_pixels(max_image_pixels)
        self.table: pd.DataFrame | None = None
        self.skipped: dict[str, str] = {}  # path -> why, for the files on_bad_file=skip left out

    # ---- data on disk -------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download the dataset when ``download=true`` (rank 0 only, as Lightning calls it)."""
        if self.download:
            if not self.download_url:
                raise ValueError("data.download=true needs data.download_url")
            download_dataset(self.download_url, self.root, self.download_sha256)

    def manifest_path(self) -> Path | None:
        """The manifest to read: explicit, ``ROOT/manifest.csv`` when ``auto``, else none."""
        if self.manifest in (None, "none", "null"):
            return None
        if self.manifest == "auto":
            candidate = self.root / "manifest.csv"
            return candidate if candidate.is_file() else None
        return Path(self.manifest)

    def load_table(self) -> pd.DataFrame:
        """Read the sample table and complete its train/val/test splits."""
        manifest = self.manifest_path()
        if manifest is not None:
            log.info("reading samples from manifest %s", manifest)
            table = read_manifest(manifest, self.labels)
        else:
            table = scan_folders(self.root, self.labels)
        table = self.drop_unreadable(table)
        table = assign_splits(table, self.val_fraction, self.test_fraction, self.seed)
        leaks = patients_in_several_splits(table)
        if leaks:
            log.warning(
                "%d patient(s) appear in more than one split, e.g. %s",
                len(leaks),
                dict(list(leaks.items())[:3]),
            )
        return table

    def drop_unreadable(self, table: pd.DataFrame) -> pd.DataFrame:
        """Decode every file once and apply ``on_bad_file`` to those that fail: ``error``
        names them all, ``skip`` logs them, records them in :attr:`skipped` and drops them."""
        if not self.validate_files:
            return table
        bad = find_unreadable(table["path"])
        if not bad:
            return table
        if self.on_bad_file == "error":
            raise BadFilesError(
                f"{len(bad)} of {len(table)} image files cannot be used:\n{describe(bad)}\n"
                "Fix: remove or re-export these files, or set data.on_bad_file=skip to leave "
                "them out (they are logged and counted as data/skipped_files)."
            )
        log.warning("data.on_bad_file=skip: leaving out %d file(s):\n%s", len(bad), describe(bad))
        self.skipped = bad
        return table[~table["path"].isin(list(bad))].reset_index(drop=True)

    def setup(self, stage: str | None = None) -> None:
        if self.table is None:
            self.table = self.load_table()
            counts = self.table.groupby(["split", "label"]).size().unstack(fill_value=0)
            log.info("samples per split (columns: label 0 = non-COVID, 1 = COVID):\n%s", counts)

    def split(self, name: str) -> pd.DataFrame:
        """Rows of one split (train, val or test), indexed by their row in the full table."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {list(SPLITS)}")
        if self.table is None:
            self.setup()
        rows = self.table[self.table["split"] == name]
        if rows.empty:
            raise ValueError(f"the '{name}' split of {self.root} is empty")
        return rows

    # ---- loaders ------------------------------------------------------------------------
    def loader(self, name: str, transform: Transform, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(
            XrayDataset(self.split(name), transform),
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        if self.balance != "oversample":
            return self.loader("train", self.train_transform, self.batch_size, shuffle=True)
        trainer = self.trainer
        dataset = XrayDataset(self.split("train"), self.train_transform)
        sampler = OversamplingSampler(
            dataset,
            dataset.labels,
            self.oversample_factor,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            seed=self.seed,
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", self.eval_transform, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", self.eval_transform, self.eval_batch_size)

    def loss_weights(self) -> torch.Tensor | None:
        """Class weights for the loss when ``balance=weighted_loss``, else None."""
        if self.balance != "weighted_loss":
            return None
        return inverse_frequency_weights(self.split("train")["label"].tolist())
