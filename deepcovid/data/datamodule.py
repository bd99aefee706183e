"""LightningDataModule for chest X-ray folders and CSV manifests."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader

from deepcovid import CLASS_NAMES
from deepcovid.data.cache import CachedImages, FileCache, FileFacts, default_cache_dir
from deepcovid.data.dataset import XrayDataset
from deepcovid.data.download import download_dataset
from deepcovid.data.io import load_image, set_max_image_pixels
from deepcovid.data.leaks import DataReport, enforce, leak_report
from deepcovid.data.samples import SPLITS, LabelMap, read_manifest, scan_folders
from deepcovid.data.sampling import TrainingSampler, inverse_frequency_weights
from deepcovid.data.settings import DataSettings
from deepcovid.data.splits import MIN_VAL_PER_CLASS, DataRecord, make_splits
from deepcovid.data.transforms import EvalPreset, Preprocessing, TrainPreset
from deepcovid.lungs.crop import Box, LungBoxes, LungLoader, crop_mask_provider, mask_origin
from deepcovid.lungs.masks import given_masks
from deepcovid.scope.check import VerdictStore, load_checker
from deepcovid.utils.config import manifest_file
from deepcovid.utils.files import printable

log = logging.getLogger(__name__)


class BadFilesError(ValueError):
    """Image files that cannot be used; the message names every one of them and the fix."""


class OutOfScopeError(ValueError):
    """Images that are not frontal chest radiographs, with ``data.out_of_scope=error``."""


def describe(bad: dict[str, str]) -> str:
    """One line per bad file: ``path: reason`` (printable)."""
    return "\n".join(f"  {printable(path)}: {reason}" for path, reason in bad.items())


class XrayDataModule(L.LightningDataModule):
    """Train/val/test loaders over a COVID-Xray-5k folder, class folders or a CSV manifest.

    ``settings`` (:mod:`deepcovid.data.settings`), or its groups' fields given flat as
    ``conf/data`` gives them: ``split`` (seed, fractions, folds, held-out source, external
    data, the tested split), ``inputs`` (changes to the model's ``preprocessing`` — its
    backbone's or checkpoint's —, augmentation, lung masks), ``loader`` (batch size per
    device, workers, balance), ``checks`` (bad files, out of scope, leaks), ``cache`` and
    ``download``, ``labels``.

    Every file is read once at setup (:mod:`deepcovid.data.cache`, facts kept in the cache
    folder for later runs): unreadable files are reported, the splits checked for leaks. With
    ``cache=True`` the same read keeps shrunk pixels that the loaders then read, except for
    lung-restricted input (cut from the full-resolution file, as ``predict`` does: the crop of
    shrunk pixels would be enlarged again); with ``normalize_on_device=True`` loaders yield
    uint8 images, converted after the transfer to the device (inside a Lightning Trainer only).
    """

    def __init__(
        self,
        root: str,
        manifest: str | None = "auto",
        preprocessing: Preprocessing | None = None,
        settings: DataSettings | None = None,
        **flat: Any,
    ) -> None:
        super().__init__()
        if settings is not None and flat:
            raise TypeError(f"give settings or their flat keys, not both (got {sorted(flat)})")
        self.root = Path(root)
        self.manifest = manifest
        self.settings = settings = settings or DataSettings.from_flat(**flat)
        self.preprocessing = (preprocessing or Preprocessing()).replace(
            **settings.inputs.preprocessing()
        )
        self.labels = LabelMap(settings.labels.positive_names, settings.labels.negative_names)
        self.train_transform = TrainPreset(
            self.preprocessing, **(settings.inputs.augmentation or {})
        )
        self.eval_transform = EvalPreset(self.preprocessing)
        cache = settings.cache
        self.file_cache = FileCache(cache.cache_dir or default_cache_dir(), cache.cache_short_side)
        set_max_image_pixels(settings.checks.max_image_pixels)
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

    @property
    def tested_split(self) -> str:
        """The split the test loader serves."""
        return self.settings.split.tested_split.value

    @property
    def lung_masks(self) -> str | None:
        """The folder of lung masks named by image stem (``DIR/<stem>.png``), if given."""
        return self.settings.inputs.lung_masks

    # ---- data on disk -------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download the dataset when ``download=true`` (rank 0 only, as Lightning calls it)."""
        download = self.settings.download
        if download.download:
            if not download.download_url:
                raise ValueError("data.download=true needs data.download_url")
            download_dataset(
                download.download_url,
                self.root,
                download.download_sha256,
                dict(download.download_sources) if download.download_sources else None,
                max_bytes=download.download_max_bytes,
                max_ratio=download.download_max_ratio,
            )

    def manifest_path(self) -> Path | None:
        """The manifest to read (:func:`~deepcovid.utils.config.manifest_file`)."""
        return manifest_file(self.root, self.manifest)

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
        if self.settings.checks.on_bad_file == "error":
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
        out_of_scope = self.settings.checks.out_of_scope
        if out_of_scope == "error":
            raise OutOfScopeError(
                f"{count}:\n{listing}\nFix: remove them from the data, or set "
                "data.out_of_scope=exclude to leave them out (listed and counted) or keep to "
                "train on them anyway."
            )
        if out_of_scope == "keep":
            log.warning("data.out_of_scope=keep: %s; kept:\n%s", count, listing)
            return table
        kept = table[~table["path"].isin(list(self.not_frontal))].reset_index(drop=True)
        emptied = [CLASS_NAMES[label] for label in sorted(set(table["label"]) - set(kept["label"]))]
        if emptied:
            raise OutOfScopeError(
                f"{count}, and leaving them out (data.out_of_scope=exclude) leaves no "
                f"{' and no '.join(emptied)} image:\n{listing}\nFix: check that data.root holds "
                "frontal chest radiographs, or set data.out_of_scope=keep to train on them anyway."
            )
        log.warning("data.out_of_scope=exclude: %s; left out:\n%s", count, listing)
        self.skipped |= {p: f"out of scope: {why}" for p, why in self.not_frontal.items()}
        return kept

    def complete_splits(self, table: pd.DataFrame) -> pd.DataFrame:
        """The table with every row in a split, and :attr:`split_origin` saying how."""
        table, self.split_origin = make_splits(table, self.settings.split)
        return table

    def setup(self, stage: str | None = None) -> None:
        if self.table is not None:
            return
        table, checks = self.read_samples(), self.settings.checks
        self.scope_store = VerdictStore(self.file_cache.directory, load_checker())
        self.facts = self.file_cache.scan(
            table["path"].tolist(),
            want_dhash=checks.near_duplicates,
            pixels=self.cached_pixels,
            probe=self.scope_store,
        )
        if self.settings.cache.cache and not self.cached_pixels:
            log.info("data.cache: lung-restricted input is read from the files, not the cache")
        table = self.complete_splits(self.check_scope(self.drop_unreadable(table)))
        self.report = leak_report(table, self.facts, checks.near_duplicates, checks.max_distance)
        enforce(self.report, checks.on_leak)
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
            split=self.settings.split,
            split_origin=dict(self.split_origin),
            members=members,
            balance=self.settings.loader.balance.value,
            training_prevalence=self.training_prevalence(),
        )
        return self._record

    def training_prevalence(self) -> float | None:
        """The COVID share of the images drawn per training epoch (over-sampling counted)."""
        train = self.table[self.table["split"] == "train"]
        if train.empty:
            return None
        n_positive = int(train["label"].sum())
        n_negative = len(train) - n_positive
        if self.settings.loader.balance == "oversample":
            factor = self.settings.loader.oversample_factor
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
        return self.settings.cache.cache and not self.preprocessing.uses_lung_masks

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
        if self.settings.loader.normalize_on_device and not complete:
            transform = transform.geometry
        loader = self.images.load if self.cached_pixels and not files else load_image
        if self.preprocessing.uses_lung_masks:
            loader = LungLoader(loader, self.boxes or None, self.lung_mask_files or None)
        return XrayDataset(rows, transform, loader)

    def pinned(self) -> bool:
        """Whether loaders pin host memory: ``pin_memory``, or when unset, training on a GPU."""
        if self.settings.loader.pin_memory is not None:
            return self.settings.loader.pin_memory
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def loader(self, dataset: XrayDataset, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.settings.loader.num_workers,
            pin_memory=self.pinned(),
            persistent_workers=self.settings.loader.persistent,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train", train=True)
        trainer, loader = self.trainer, self.settings.loader
        sampler = TrainingSampler(
            dataset,
            dataset.labels,
            loader.oversample_factor if loader.balance == "oversample" else 1,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            seed=self.settings.split.seed,
        )
        # Lightning creates the first iterator (and worker processes prefetch from it) before it
        # sets the sampler's epoch: a run resumed at epoch e would start on epoch 0's plan. The
        # epoch it will set is the one its restored progress counts as processed.
        sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed if trainer else 0)
        return self.loader(dataset, loader.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("val"), self.settings.loader.eval_batch)

    def test_dataloader(self) -> DataLoader:
        """The tested split, always read from the files as ``predict`` reads them: the cache's
        shrunk pixels (JPEGs decoded at a reduced scale) differ slightly, and the tested numbers
        must be those of the model as it is used."""
        return self.loader(
            self.dataset(self.tested_split, files=True), self.settings.loader.eval_batch
        )

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """With ``normalize_on_device``: uint8 → normalised float, on the device."""
        if self.settings.loader.normalize_on_device:
            training = self.trainer is not None and self.trainer.training
            preset = self.train_transform if training else self.eval_transform
            batch["image"] = preset.finish(batch["image"])
        return batch

    def loss_weights(self) -> torch.Tensor | None:
        """Class weights for the loss when ``balance=weighted_loss``, else None."""
        if self.settings.loader.balance != "weighted_loss":
            return None
        return inverse_frequency_weights(self.split("train")["label"].tolist())
