"""LightningDataModule for chest X-ray folders and CSV manifests."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader

from deepcovid.data.cache import CachedImages, FileCache, FileFacts, default_cache_dir
from deepcovid.data.dataset import XrayDataset
from deepcovid.data.download import MAX_EXTRACTED_BYTES, MAX_RATIO, download_dataset
from deepcovid.data.io import DEFAULT_MAX_IMAGE_PIXELS, load_image, set_max_image_pixels
from deepcovid.data.leaks import MAX_DISTANCE, DataReport, enforce, leak_report
from deepcovid.data.samples import (
    DEFAULT_NEGATIVE_NAMES,
    DEFAULT_POSITIVE_NAMES,
    SPLITS,
    LabelMap,
    read_manifest,
    scan_folders,
)
from deepcovid.data.sampling import BALANCE_MODES, TrainingSampler, inverse_frequency_weights
from deepcovid.data.splits import (
    DataRecord,
    assign_external_splits,
    assign_holdout_source,
    assign_splits,
)
from deepcovid.data.transforms import EvalPreset, Preprocessing, TrainPreset
from deepcovid.lungs.crop import Box, LungBoxes, LungLoader, crop_mask_provider, mask_origin
from deepcovid.lungs.masks import given_masks
from deepcovid.scope.check import VerdictStore, load_checker
from deepcovid.utils.files import printable

log = logging.getLogger(__name__)
ON_BAD_FILE = ("error", "skip")
OUT_OF_SCOPE = ("exclude", "keep", "error")
EXTERNAL = ("test", "test_and_val")
MIN_VAL_PER_CLASS = 20  # below this, checkpoint and threshold choice rest on very few images


class BadFilesError(ValueError):
    """Image files that cannot be used; the message names every one of them and the fix."""


class OutOfScopeError(ValueError):
    """Images that are not frontal chest radiographs, with ``data.out_of_scope=error``."""


def describe(bad: dict[str, str]) -> str:
    """One line per bad file: ``path: reason`` (printable)."""
    return "\n".join(f"  {printable(path)}: {reason}" for path, reason in bad.items())


class XrayDataModule(L.LightningDataModule):
    """Train/val/test loaders over a COVID-Xray-5k folder, class folders or a CSV manifest.

    ``preprocessing`` is the model's (its backbone's, or its checkpoint's); ``image_size``,
    ``crop_ratio`` and ``lung_crop`` (crop each image to its lungs' box first, see
    :mod:`deepcovid.lungs.crop`) override it when given. ``batch_size`` is per device:
    under DDP with N devices a step sees N × batch_size images.

    Every file is read once at setup (:mod:`deepcovid.data.cache`, facts kept in ``cache_dir``
    for later runs): unreadable files are reported (``on_bad_file``), the splits checked for
    leaks (``on_leak``, ``near_duplicates``). With ``cache=True`` the same read keeps shrunk
    pixels that the loaders then read, except for lung-restricted input (cropped or blanked
    from the full-resolution file, as ``predict`` does: the crop of shrunk pixels would be
    enlarged again); with ``normalize_on_device=True`` loaders yield uint8
    images and the float conversion runs after the transfer to the device (inside a Lightning
    Trainer only). ``pin_memory=None`` pins when the trainer runs on a GPU.

    ``holdout_source``: leave that source out: its images are the test split, the other
    sources' train and val (``experiment=leave_one_source_out``).

    ``external``: the data is another site's, for evaluation: ``test`` makes every image (or the
    data's own test split) a test image; ``test_and_val`` also keeps (or carves) a val split
    of that site, for re-choosing thresholds there. ``tested_split`` is the split the test
    loader serves (``val`` to evaluate the val split itself). ``lung_masks``: a folder of lung
    masks named by image stem (``DIR/<stem>.png``), for the shortcut audit and
    ``lung_crop_masks=any``.
    """

    def __init__(
        self,
        root: str,
        manifest: str | None = "auto",
        preprocessing: Preprocessing | None = None,
        image_size: int | None = None,
        crop_ratio: float | None = None,
        lung_crop: bool | None = None,
        lung_crop_masks: str | None = None,
        outside_lungs: str | None = None,
        augmentation: dict[str, Any] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        num_folds: int | None = None,
        fold: int | None = None,
        holdout_source: str | None = None,
        external: str | None = None,
        tested_split: str = "test",
        lung_masks: str | None = None,
        seed: int = 42,
        batch_size: int = 20,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        balance: str = "oversample",
        oversample_factor: int = 5,
        positive_names: Sequence[str] = DEFAULT_POSITIVE_NAMES,
        negative_names: Sequence[str] = DEFAULT_NEGATIVE_NAMES,
        download: bool = False,
        download_url: str | None = None,
        download_sha256: str | None = None,
        download_sources: dict[str, str] | None = None,
        download_max_bytes: int = MAX_EXTRACTED_BYTES,
        download_max_ratio: float = MAX_RATIO,
        on_bad_file: str = "error",
        out_of_scope: str = "keep",
        on_leak: str = "error",
        near_duplicates: bool = False,
        max_distance: int = MAX_DISTANCE,
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
        if out_of_scope not in OUT_OF_SCOPE:
            raise ValueError(
                f"data.out_of_scope={out_of_scope!r}; choose one of {list(OUT_OF_SCOPE)}"
            )
        if external not in (None, *EXTERNAL):
            raise ValueError(f"data.external={external!r}; choose null or one of {list(EXTERNAL)}")
        self.root = Path(root)
        self.manifest = manifest
        self.preprocessing = (preprocessing or Preprocessing()).replace(
            image_size=image_size,
            crop_ratio=crop_ratio,
            lung_crop=lung_crop,
            lung_crop_masks=lung_crop_masks,
            outside_lungs=outside_lungs,
        )
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.num_folds = num_folds
        self.fold = fold
        self.holdout_source = holdout_source
        self.external = external
        self.tested_split = tested_split
        self.lung_masks = lung_masks
        self.seed = seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.balance = balance
        self.oversample_factor = oversample_factor
        self.labels = LabelMap(positive_names, negative_names)
        self.train_transform = TrainPreset(self.preprocessing, **(augmentation or {}))
        self.eval_transform = EvalPreset(self.preprocessing)
        self.normalize_on_device = normalize_on_device
        self.cache = cache
        self.file_cache = FileCache(cache_dir or default_cache_dir(), cache_short_side)
        self.download = download
        self.download_url = download_url
        self.download_sha256 = download_sha256
        self.download_sources = dict(download_sources) if download_sources else None
        self.download_limits = {"max_bytes": download_max_bytes, "max_ratio": download_max_ratio}
        self.on_bad_file = on_bad_file
        self.out_of_scope = out_of_scope
        self.on_leak = on_leak
        self.near_duplicates = near_duplicates
        self.max_distance = max_distance
        set_max_image_pixels(max_image_pixels)
        self.table: pd.DataFrame | None = None
        self.facts: dict[str, FileFacts] = {}
        self.split_origin: dict[str, str] = {}
        self.report: DataReport | None = None
        self.images: CachedImages | None = None
        self.boxes: dict[str, Box] = {}  # lung boxes, with lung_crop
        self.lung_mask_files: dict[str, Path] = {}  # kept lung masks, with outside_lungs=blank
        self.skipped: dict[str, str] = {}  # path -> why, for the files on_bad_file=skip left out
        self.not_frontal: dict[str, str] = {}  # path -> scope_reason, excluded or kept
        self._record: DataRecord | None = None

    # ---- data on disk -------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download the dataset when ``download=true`` (rank 0 only, as Lightning calls it)."""
        if self.download:
            if not self.download_url:
                raise ValueError("data.download=true needs data.download_url")
            download_dataset(
                self.download_url,
                self.root,
                self.download_sha256,
                self.download_sources,
                **self.download_limits,
            )

    def manifest_path(self) -> Path | None:
        """The manifest to read: explicit, ``ROOT/manifest.csv`` when ``auto``, else none."""
        if self.manifest in (None, "none", "null"):
            return None
        if self.manifest == "auto":
            candidate = self.root / "manifest.csv"
            return candidate if candidate.is_file() else None
        return Path(self.manifest)

    def read_samples(self) -> pd.DataFrame:
        """The sample table as the data gives it (splits not yet completed)."""
        manifest = self.manifest_path()
        if manifest is None:
            return scan_folders(self.root, self.labels)
        log.info("reading samples from manifest %s", manifest)
        return read_manifest(manifest, self.labels)

    def drop_unreadable(self, table: pd.DataFrame) -> pd.DataFrame:
        """Apply ``on_bad_file`` to the files that cannot be used: ``error`` names them all,
        ``skip`` logs them, records them in :attr:`skipped` and drops them."""
        bad = {p: self.facts[p].problem for p in table["path"] if not self.facts[p].readable}
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

    def check_scope(self, table: pd.DataFrame) -> pd.DataFrame:
        """List the images that are not frontal chest radiographs (:mod:`deepcovid.scope`) by
        name and apply ``out_of_scope``: ``exclude`` drops them (counted in :attr:`skipped`),
        ``keep`` (the default here; conf/data sets ``exclude``) keeps them, ``error`` stops."""
        paths = table["path"].tolist()
        digests = {p: self.facts[p].sha256 for p in paths}
        verdicts, unreadable = self.scope_store.verdicts(digests)
        unread = {
            Path(p): f"the scope check could not read it: {why}" for p, why in unreadable.items()
        }
        self.not_frontal = {
            p: unread.get(Path(p)) or verdicts[Path(p)].reason
            for p in paths
            if Path(p) in unread or not verdicts[Path(p)].in_scope
        }
        if not self.not_frontal:
            return table
        listing = describe(self.not_frontal)
        count = f"{len(self.not_frontal)} of {len(table)} images are not frontal chest radiographs"
        if self.out_of_scope == "error":
            raise OutOfScopeError(
                f"{count}:\n{listing}\nFix: remove them from the data, or set "
                "data.out_of_scope=exclude to leave them out (listed and counted) or keep to "
                "train on them anyway."
            )
        if self.out_of_scope == "keep":
            log.warning("data.out_of_scope=keep: %s; kept:\n%s", count, listing)
            return table
        log.warning("data.out_of_scope=exclude: %s; left out:\n%s", count, listing)
        self.skipped |= {p: f"out of scope: {why}" for p, why in self.not_frontal.items()}
        return table[~table["path"].isin(list(self.not_frontal))].reset_index(drop=True)

    def complete_splits(self, table: pd.DataFrame) -> pd.DataFrame:
        """The table with every row in a split, and :attr:`split_origin` saying how."""
        if self.external is not None:
            table, self.split_origin = assign_external_splits(
                table, self.external == "test_and_val", self.val_fraction, self.seed
            )
        elif self.holdout_source is not None:
            table, self.split_origin = assign_holdout_source(
                table, self.holdout_source, self.val_fraction, self.seed
            )
        else:
            table, self.split_origin = assign_splits(
                table, self.val_fraction, self.test_fraction, self.seed, self.num_folds, self.fold
            )
        return table

    def setup(self, stage: str | None = None) -> None:
        if self.table is not None:
            return
        table = self.read_samples()
        self.scope_store = VerdictStore(self.file_cache.directory, load_checker())
        self.facts = self.file_cache.scan(
            table["path"].tolist(),
            want_dhash=self.near_duplicates,
            pixels=self.cached_pixels,
            probe=self.scope_store,
        )
        if self.cache and not self.cached_pixels:
            log.info("data.cache: lung-restricted input is read from the files, not the cache")
        table = self.complete_splits(self.check_scope(self.drop_unreadable(table)))
        self.report = leak_report(table, self.facts, self.near_duplicates, self.max_distance)
        enforce(self.report, self.on_leak)
        if self.cached_pixels:
            self.images = self.file_cache.images(self.facts)
        if self.preprocessing.uses_lung_masks:
            self.keep_lung_geometry(table)
        self.table = table
        self.log_splits()

    def keep_lung_geometry(self, table: pd.DataFrame) -> None:
        """The lung box (with lung_crop) and kept mask (with outside_lungs=blank) of every
        image, found once and kept in the cache folder."""
        masks = self.preprocessing.lung_crop_masks
        provider = crop_mask_provider(masks, self.lung_masks)
        given = given_masks(table["lung_mask"])
        if masks == "segmenter":
            given = [None] * len(given)
        kept = LungBoxes(self.file_cache.directory, self.preprocessing.lung_margin, masks)
        paths = table["path"].tolist()
        digests = [self.facts[p].sha256 for p in paths]
        origins = [
            mask_origin(path, mask, masks, self.lung_masks)
            for path, mask in zip(paths, given, strict=True)
        ]
        boxes = kept.boxes(
            paths, digests, given, origins,
            lambda path, mask: provider.mask_for(path, given_mask=mask).mask,
        )  # fmt: skip
        if self.preprocessing.lung_crop:
            self.boxes = boxes
        if self.preprocessing.outside_lungs == "blank":
            self.lung_mask_files = {
                path: kept.mask_file(digest, origin)
                for path, digest, origin in zip(paths, digests, origins, strict=True)
            }

    def log_splits(self) -> None:
        """Counts per split and class, where each split came from, and the weak spots."""
        counts = self.table.groupby(["split", "label"]).size().unstack(fill_value=0)
        origins = "\n".join(f"  {split}: {how}" for split, how in self.split_origin.items())
        log.info(
            "samples per split (columns: label 0 = non-COVID, 1 = COVID):\n%s\nsplits:\n%s",
            counts,
            origins,
        )
        if self.table["patient_id"].isna().all():
            log.warning(
                "%s has no patient ids: splits and intervals are per image, so radiographs of "
                "one patient may sit in train and val (or test). Give a manifest with a "
                "patient_id column where you can.",
                self.root,
            )
        val = self.table[self.table["split"] == "val"]
        if len(val):
            n_positive = int(val["label"].sum())
            n_negative = len(val) - n_positive
            if min(n_positive, n_negative) < MIN_VAL_PER_CLASS:
                log.warning(
                    "the val split holds %d COVID and %d non-COVID images: checkpoint and "
                    "threshold selection rest on that many (fewer than %d of a class)",
                    n_positive,
                    n_negative,
                    MIN_VAL_PER_CLASS,
                )

    def relative(self, path: str) -> str:
        """``path`` relative to the data root (how splits are recorded)."""
        return os.path.relpath(path, self.root)

    def fingerprint(self) -> str:
        """sha256 over (relative path, file sha256, label) of every image, in path order."""
        lines = sorted(
            f"{self.relative(p)}\t{self.facts[p].sha256}\t{label}"
            for p, label in zip(self.table["path"], self.table["label"], strict=True)
        )
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def record(self) -> DataRecord:
        """The :class:`DataRecord` of this data and its splits (computed once, after setup)."""
        if self._record is not None:
            return self._record
        if self.table is None:
            self.setup()
        members = {
            split: sorted(
                self.relative(p) for p in self.table.loc[self.table["split"] == split, "path"]
            )
            for split in ("val", "test")
        }
        manifest = self.manifest_path()
        self._record = DataRecord(
            root=str(self.root.resolve()),
            manifest=None if manifest is None else str(manifest.resolve()),
            fingerprint=self.fingerprint(),
            n_images=len(self.table),
            seed=self.seed,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            num_folds=self.num_folds,
            fold=self.fold,
            split_origin=dict(self.split_origin),
            members=members,
            balance=self.balance,
            training_prevalence=self.training_prevalence(),
            holdout_source=self.holdout_source,
        )
        return self._record

    def training_prevalence(self) -> float | None:
        """The COVID share of the images drawn per training epoch (over-sampling counted)."""
        train = self.table[self.table["split"] == "train"]
        if train.empty:
            return None
        n_positive = int(train["label"].sum())
        n_negative = len(train) - n_positive
        if self.balance == "oversample":
            factor = self.oversample_factor
            n_positive, n_negative = (
                (n_positive * factor, n_negative)
                if n_positive < n_negative  # the sampler repeats the smaller class (ties: label 0)
                else (n_positive, n_negative * factor)
            )
        return n_positive / (n_positive + n_negative)

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

    @property
    def cached_pixels(self) -> bool:
        """Whether the loaders read the cache's shrunk pixels: not for lung-restricted input,
        cut from the files as predict does (a crop of shrunk pixels would be enlarged again)."""
        return self.cache and not self.preprocessing.uses_lung_masks

    # ---- loaders ------------------------------------------------------------------------
    def dataset(
        self, name: str, train: bool = False, complete: bool = False, files: bool = False
    ) -> XrayDataset:
        """The split's dataset (see :meth:`dataset_of`)."""
        return self.dataset_of(self.split(name), train, complete, files)

    def dataset_of(
        self,
        rows: pd.DataFrame,
        train: bool = False,
        complete: bool = False,
        files: bool = False,
    ) -> XrayDataset:
        """``rows`` read from the cache (unless ``files``) or the files, lung-cropped or blanked
        as the model's preprocessing says, with the worker-side transform: only the geometry
        when normalising on the device, unless ``complete`` (for callers that feed the network
        directly)."""
        transform = self.train_transform if train else self.eval_transform
        if self.normalize_on_device and not complete:
            transform = transform.geometry
        loader = self.images.load if self.cached_pixels and not files else load_image
        if self.preprocessing.uses_lung_masks:
            loader = LungLoader(loader, self.boxes or None, self.lung_mask_files or None)
        return XrayDataset(rows, transform, loader)

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
        dataset = self.dataset("train", train=True)
        trainer = self.trainer
        sampler = TrainingSampler(
            dataset,
            dataset.labels,
            self.oversample_factor if self.balance == "oversample" else 1,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            seed=self.seed,
        )
        # Lightning creates the first iterator (and worker processes prefetch from it) before it
        # sets the sampler's epoch: a run resumed at epoch e would start on epoch 0's plan. The
        # epoch it will set is the one its restored progress counts as processed.
        sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed if trainer else 0)
        return self.loader(dataset, self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("val"), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        """The tested split, always read from the files as ``predict`` reads them: the cache's
        shrunk pixels (JPEGs decoded at a reduced scale) differ slightly, and the tested numbers
        must be those of the model as it is used."""
        return self.loader(self.dataset(self.tested_split, files=True), self.eval_batch_size)

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
