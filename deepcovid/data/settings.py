"""The data's settings as types: one frozen dataclass per concern, shared by ``conf/data``
(whose flat keys are their fields, checked against :data:`DataConfig` when Hydra composes the
config), :class:`~deepcovid.data.datamodule.XrayDataModule` and the checkpoint's
:class:`~deepcovid.data.splits.DataRecord` (which keeps the :class:`SplitSettings`).

A new knob is a field of its group here (the config schema follows) and a key in
``conf/data/covidx5k.yaml``; the code that uses it reads ``settings.<group>.<knob>``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from functools import cache
from typing import Any, get_args, get_type_hints

from deepcovid.data.download import MAX_EXTRACTED_BYTES, MAX_RATIO
from deepcovid.data.io import DEFAULT_MAX_IMAGE_PIXELS
from deepcovid.data.samples import DEFAULT_NEGATIVE_NAMES, DEFAULT_POSITIVE_NAMES, SPLITS
from deepcovid.data.transforms import LUNG_CROP_MASKS, OUTSIDE_LUNGS

MAX_DISTANCE = 16  # bits of 256: re-encodes are at <= 13, distinct cxr-dev images at >= 23


class ExternalSplits(StrEnum):
    """Another site's data: every image (or its own test split) is test; ``test_and_val``
    also keeps (or carves) a val split of that site, for re-choosing thresholds there."""

    test = "test"
    test_and_val = "test_and_val"


Split = StrEnum("Split", {name: name for name in SPLITS})
OutsideLungs = StrEnum("OutsideLungs", {name: name for name in OUTSIDE_LUNGS})
LungCropMasks = StrEnum("LungCropMasks", {name: name for name in LUNG_CROP_MASKS})


class Balance(StrEnum):
    oversample = "oversample"
    weighted_loss = "weighted_loss"
    none = "none"


class OnBadFile(StrEnum):
    error = "error"
    skip = "skip"


class OutOfScope(StrEnum):
    exclude = "exclude"
    keep = "keep"
    error = "error"


class OnLeak(StrEnum):
    error = "error"
    warn = "warn"


@cache
def enum_fields(cls: type) -> dict[str, type[Enum]]:
    """The fields of ``cls`` typed by an Enum (or an optional one), with that Enum."""
    enums = {
        name: [k for k in (hint, *get_args(hint)) if isinstance(k, type) and issubclass(k, Enum)]
        for name, hint in get_type_hints(cls).items()
    }
    return {name: kinds[0] for name, kinds in enums.items() if kinds}


class Settings:
    """Base of the groups: strings given for Enum fields (Python callers, old records) become
    the Enum, or stop naming the key and its choices (Hydra stops them at composition)."""

    def __post_init__(self) -> None:
        for name, kind in enum_fields(type(self)).items():
            value = getattr(self, name)
            if value is None or isinstance(value, kind):
                continue
            if value not in kind.__members__:
                raise ValueError(f"data.{name}={value!r}; choose one of {list(kind.__members__)}")
            object.__setattr__(self, name, kind(value))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (Enums as their strings), for checkpoints and JSON."""
        return {
            f.name: v.value if isinstance(v := getattr(self, f.name), Enum) else v
            for f in fields(self)
        }


@dataclass(frozen=True)
class SplitSettings(Settings):
    """How the splits are made (recorded in the checkpoint, so ``evaluate`` rebuilds them):
    val carved from train, test carved when the data has none, or fold ``fold`` of
    ``num_folds``, or ``holdout_source`` left out as test; ``external_splits``: another
    site's data, only tested; ``tested_split`` is the split the test loader serves."""

    seed: int = 42
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    num_folds: int | None = None
    fold: int | None = None
    holdout_source: str | None = None
    external_splits: ExternalSplits | None = None
    tested_split: Split = Split.test

    def run_identity(self) -> dict[str, Any]:
        """What tells the runs of a sweep apart (the evaluation's ``ModelInfo`` keeps it)."""
        return {
            "seed": self.seed,
            "fold": self.fold,
            "num_folds": self.num_folds,
            "holdout_source": self.holdout_source,
        }

    @classmethod
    def from_record(cls, stored: dict[str, Any]) -> SplitSettings:
        """From a record's values: a nested ``split`` or, before it, the flat keys."""
        return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})


@dataclass(frozen=True)
class InputSettings(Settings):
    """Changes to the model's preprocessing (None keeps the backbone's or checkpoint's), the
    training augmentation, and the folder of lung masks named by image stem."""

    image_size: int | None = None
    crop_ratio: float | None = None
    lung_crop: bool | None = None
    lung_crop_masks: LungCropMasks | None = None
    outside_lungs: OutsideLungs | None = None
    augmentation: dict[str, Any] | None = None
    lung_masks: str | None = None

    def preprocessing(self) -> dict[str, Any]:
        """The changes to the model's preprocessing, as plain values (None: unchanged)."""
        values = self.to_dict()
        keys = ("image_size", "crop_ratio", "lung_crop", "lung_crop_masks", "outside_lungs")
        return {key: values[key] for key in keys}


@dataclass(frozen=True)
class LoaderSettings(Settings):
    """Batches (per device), workers, host memory, class balance of the training draws, and
    whether the float conversion runs on the device."""

    batch_size: int = 20
    eval_batch_size: int | None = None
    num_workers: int = 4
    pin_memory: bool | None = None
    persistent_workers: bool = True
    balance: Balance = Balance.oversample
    oversample_factor: int = 5
    normalize_on_device: bool = False

    @property
    def eval_batch(self) -> int:
        """The batch size of val and test (``batch_size`` unless set)."""
        return self.eval_batch_size or self.batch_size

    @property
    def persistent(self) -> bool:
        """Whether loader workers live across epochs (only with workers)."""
        return self.persistent_workers and self.num_workers > 0


@dataclass(frozen=True)
class FileChecks(Settings):
    """What happens to unreadable files, images out of scope and leaking splits."""

    on_bad_file: OnBadFile = OnBadFile.error
    out_of_scope: OutOfScope = OutOfScope.keep
    on_leak: OnLeak = OnLeak.error
    near_duplicates: bool = False
    max_distance: int = MAX_DISTANCE
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class CacheSettings(Settings):
    """The cache folder of file facts, and (``cache``) the shrunk pixels the loaders read."""

    cache: bool = False
    cache_dir: str | None = None
    cache_short_side: int = 256


@dataclass(frozen=True)
class DownloadSettings(Settings):
    """The archive ``download=true`` fetches, its checks and its sources."""

    download: bool = False
    download_url: str | None = None
    download_sha256: str | None = None
    download_sources: dict[str, str] | None = None
    download_max_bytes: int = MAX_EXTRACTED_BYTES
    download_max_ratio: float = MAX_RATIO


@dataclass(frozen=True)
class LabelNames(Settings):
    """Class names (folders, manifest labels) read as COVID and as non-COVID."""

    positive_names: tuple[str, ...] = tuple(DEFAULT_POSITIVE_NAMES)
    negative_names: tuple[str, ...] = tuple(DEFAULT_NEGATIVE_NAMES)


@dataclass(frozen=True)
class DataSettings:
    """Every data setting, by group."""

    split: SplitSettings = field(default_factory=SplitSettings)
    inputs: InputSettings = field(default_factory=InputSettings)
    loader: LoaderSettings = field(default_factory=LoaderSettings)
    checks: FileChecks = field(default_factory=FileChecks)
    cache: CacheSettings = field(default_factory=CacheSettings)
    download: DownloadSettings = field(default_factory=DownloadSettings)
    labels: LabelNames = field(default_factory=LabelNames)

    @classmethod
    def groups(cls) -> dict[str, type]:
        return {f.name: f.default_factory for f in fields(cls)}

    @classmethod
    def from_flat(cls, **flat: Any) -> DataSettings:
        """From ``conf/data``'s flat keys (each a field of one group); unknown keys stop."""
        known = {f.name: group for group, kind in cls.groups().items() for f in fields(kind)}
        unknown = sorted(set(flat) - set(known))
        if unknown:
            raise TypeError(f"unknown data setting(s) {unknown}; known: {sorted(known)}")
        values: dict[str, dict[str, Any]] = {group: {} for group in cls.groups()}
        for key, value in flat.items():
            values[known[key]][key] = value
        return cls(**{group: kind(**values[group]) for group, kind in cls.groups().items()})


def schema_field(f: dataclasses.Field) -> tuple[str, Any, dataclasses.Field]:
    """A group's field as a field of the (mutable) config schema."""
    if f.default_factory is not dataclasses.MISSING:
        return f.name, f.type, field(default_factory=f.default_factory)
    default = list(f.default) if isinstance(f.default, tuple) else f.default
    if isinstance(default, list):
        return f.name, f.type, field(default_factory=lambda: list(default))
    return f.name, f.type, field(default=default)


def config_schema() -> type:
    """``conf/data``'s schema: the target, root and manifest, then every group's fields."""
    own = [
        ("_target_", str, field(default="deepcovid.data.datamodule.XrayDataModule")),
        ("root", str, field(default="???")),
        ("manifest", "str | None", field(default="auto")),
    ]
    grouped = [schema_field(f) for kind in DataSettings.groups().values() for f in fields(kind)]
    schema = dataclasses.make_dataclass("DataConfig", own + grouped)
    schema.__module__ = __name__  # its string annotations resolve here
    return schema


DataConfig = config_schema()
