"""LightningDataModule for chest X-ray folders and CSV manifests."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader

from deepcovid.data.cache import ImageCache, Source, cached_paths, open_cache
from deepcovid.data.dataset import XrayDataset
from deepcovid.data.download import download_dataset
from deepcovid.data.io import DEFAULT_MAX_IMAGE_PIXELS, load_image, set_max_image_pixels
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
from deepcovid.data.transforms import EvalPreset, Preset, TrainPreset
from deepcovid.data.validate import BadFilesError, describe, find_unreadable

log = logging.getLogger(__name__)
Transform = Callable[[Image.Image | torch.Tensor], torch.Tensor]
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "deepcovid"
ON_BAD_FILE = ("error", "skip")


def known(value: Any) -> str | None:
    """A table cell as text, or None where it is missing (None or NaN)."""
    return None if pd.isna(value) else str(value)


def table_sources(rows: pd.DataFrame) -> list[Source]:
    """The cache sources of sample-table rows (path, label, patient, source)."""
    return [
        Source(row.path, row.label, known(row.patient_id), known(row.source))
        for row in rows.itertuples()
    ]


class XrayDataModule(L.LightningDataModule):
    """Train/val/test loaders over a COVID-Xray-5k folder, class folders or a CSV manifest.

    ``batch_size`` is per device: under DDP with N devices a step sees N × batch_size images.

    With ``cache=True`` images are read from a preprocessed cache (:mod:`deepcovid.data.cache`,
    built on first use in ``cache_dir``); with ``normalize_on_device=True`` loaders yield uint8
    images and the float conversion and normalisation run after the transfer to the device
    (inside a Lightning Trainer only; needs preset transforms). ``pin_memory=None`` pins when
    the trainer runs on a GPU.
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
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
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
        cache: bool = False,
        cache_dir: str | None = None,
        cache_short_side: int = 256,
        normalize_on_device: bool = False,
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
        presets = all(isinstance(t, Preset) for t in (self.train_transform, self.eval_transform))
        if normalize_on_device and not presets:
            raise ValueError(
                "data.normalize_on_device=true needs preset transforms (TrainPreset/EvalPreset, "
                "which split into geometry and finish); set it to false for custom transforms."
            )
        self.normalize_on_device = normalize_on_device
        self.cache = cache
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        self.cache_short_side = cache_short_side
        self.caches: dict[str, ImageCache] = {}
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
        bad = find_unreadable(self.paths_to_validate(table))
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

    def paths_to_validate(self, table: pd.DataFrame) -> pd.Series:
        """The table's paths, less those cached unchanged (they decoded when cached)."""
        paths = table["path"]
        if not self.cache or not self.cache_dir.is_dir():
            return paths
        cached = cached_paths(self.cache_dir)
        return paths[~paths.map(os.path.abspath).isin(cached)]

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
    def split_cache(self, name: str) -> ImageCache:
        """The preprocessed cache of one split, built on first use."""
        if name not in self.caches:
            sources = table_sources(self.split(name))
            self.caches[name] = open_cache(sources, self.cache_dir, name, self.cache_short_side)
        return self.caches[name]

    def dataset(self, name: str, transform: Transform) -> XrayDataset:
        """The split's dataset, read from the cache or the files, with the worker-side
        transform (only the geometry when normalising on the device)."""
        loader = self.split_cache(name).load if self.cache else load_image
        if self.normalize_on_device:
            transform = transform.geometry
        return XrayDataset(self.split(name), transform, loader)

    def pinned(self) -> bool:
        """Whether loaders pin host memory: ``pin_memory``, or when unset, training on a GPU."""
        if self.pin_memory is not None:
            return self.pin_memory
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def loader(self, dataset: XrayDataset, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pinned(),
            persistent_workers=self.persistent_workers,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train", self.train_transform)
        if self.balance != "oversample":
            return self.loader(dataset, self.batch_size, shuffle=True)
        trainer = self.trainer
        sampler = OversamplingSampler(
            dataset,
            dataset.labels,
            self.oversample_factor,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            seed=self.seed,
        )
        return self.loader(dataset, self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("val", self.eval_transform), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("test", self.eval_transform), self.eval_batch_size)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """With ``normalize_on_device``: uint8 → normalised float, on the device."""
        if self.normalize_on_device:
            training = self.trainer is not None and self.trainer.training
            preset = self.train_transform if training else self.eval_transform
            batch["image"] = preset.finish(batch["image"])
        return batch

    def loss_weights(self) -> torch.Tensor | None:
        """Class weights for the loss when ``balance=weighted_loss``, else None."""
        if self.balance != "weighted_loss":
            return None
        return inverse_frequency_weights(self.split("train")["label"].tolist())
