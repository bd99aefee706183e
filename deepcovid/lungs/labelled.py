"""Images paired with lung masks for training and evaluating the segmenter.

A source is a CSV manifest with a ``path`` column (relative paths resolve against the CSV's
folder), optionally ``patient_id`` and ``lung_mask`` (a mask image path, relative likewise).
An image's mask is its ``lung_mask`` when given, else (with ``use_v7``) the V7 Labs mask of the
same file name; images with neither are unlabelled. Masks are fitted to their image
(``deepcovid.lungs.masks.fit_mask``), so a mask drawn on the original fits a downscaled copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.model_selection import GroupShuffleSplit
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from deepcovid.data.io import load_image
from deepcovid.data.samples import resolve
from deepcovid.lungs.masks import V7_IGNORE, V7_LUNG, V7LungMasks, fit_mask, read_mask_file
from deepcovid.utils.small_nets import standardise, to_working_pixels

log = logging.getLogger(__name__)

# Target classes at the working size: the loss skips IGNORE pixels (V7's "Ignore" class:
# devices and markup drawn over the lungs, where the true lung boundary is not annotated).
BACKGROUND, LUNG, IGNORE = 0, 1, 2


@dataclass(frozen=True)
class ImageRecord:
    """One image of a source: where it is, whose it is, and where its mask comes from
    (``mask_path`` for a manifest mask, ``v7_name`` for a V7 mask; neither: unlabelled)."""

    path: Path
    source: str
    patient_id: str
    label: str = ""
    mask_path: Path | None = None
    v7_name: str | None = None

    @property
    def has_mask(self) -> bool:
        return self.mask_path is not None or self.v7_name is not None

    @property
    def group(self) -> str:
        """Split key: the patient, else the file name (copies of one image stay together)."""
        return f"patient:{self.patient_id}" if self.patient_id else f"file:{self.path.name}"


def read_source(name: str, manifest: str | Path, v7: V7LungMasks | None) -> list[ImageRecord]:
    """The images listed in ``manifest``, each with its mask's origin (if any)."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"sources.{name}={manifest}: no such manifest CSV")
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    if "path" not in frame.columns:
        raise ValueError(
            f"{manifest}: columns {list(frame.columns)}; a source manifest needs a 'path' column "
            "(and optionally patient_id, lung_mask)"
        )
    records = []
    for row in frame.to_dict("records"):
        path = resolve(manifest.parent, row["path"])
        given = row.get("lung_mask", "")
        v7_name = path.name if not given and v7 is not None and path.name in v7 else None
        records.append(
            ImageRecord(
                path=path,
                source=name,
                patient_id=row.get("patient_id", ""),
                label=row.get("label", ""),
                mask_path=resolve(manifest.parent, given) if given else None,
                v7_name=v7_name,
            )
        )
    return records


def read_sources(sources: Mapping[str, str | Path], v7: V7LungMasks | None) -> list[ImageRecord]:
    """Every image of every source, in the sources' order."""
    return [record for name, csv in sources.items() for record in read_source(name, csv, v7)]


def heldout_split(
    records: Sequence[ImageRecord], fraction: float, seed: int
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """``(train, heldout)``: about ``fraction`` of the patients held out, seeded; no patient
    (and no file name) on both sides."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"heldout_fraction={fraction}: must lie strictly between 0 and 1")
    groups = [r.group for r in records]
    if len(set(groups)) < 2:
        raise ValueError(f"{len(records)} labelled images of one patient: nothing to hold out")
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    train, heldout = next(splitter.split(np.zeros(len(records)), groups=groups))
    return [records[i] for i in train], [records[i] for i in heldout]


@dataclass(frozen=True)
class LabelledImage:
    """An image and its lung (and ignored) pixels at the image's resolution."""

    record: ImageRecord
    image: Image.Image
    lung: np.ndarray
    ignore: np.ndarray


def load_labelled(record: ImageRecord, v7: V7LungMasks | None) -> LabelledImage:
    """Read ``record``'s image and mask, the mask fitted to the image. An empty mask (V7's
    lateral views) is an error naming the image."""
    image = load_image(record.path)
    if record.mask_path is not None:
        lung = fit_mask(read_mask_file(record.mask_path), image.size, str(record.mask_path))
        ignore = np.zeros_like(lung)
    elif record.v7_name is not None and v7 is not None:
        labels = v7.read_labels(record.v7_name)
        source = f"V7 mask {record.v7_name} for {record.path}"
        lung = fit_mask(labels == V7_LUNG, image.size, source)
        ignore = fit_mask(labels == V7_IGNORE, image.size, source)
    else:
        raise ValueError(f"{record.path}: no lung mask (neither lung_mask nor a V7 mask)")
    if not lung.any():
        raise ValueError(f"{record.path}: its lung mask is empty (a lateral view or CT slice?)")
    return LabelledImage(record, image, lung, ignore)


def load_all(
    records: Sequence[ImageRecord], v7: V7LungMasks | None
) -> Iterator[LabelledImage | str]:
    """:func:`load_labelled` for each record, one at a time; a record that cannot be used
    (unreadable image, empty or mismatched mask) yields its error message instead."""
    for record in records:
        try:
            yield load_labelled(record, v7)
        except ValueError as error:
            log.warning("skipped: %s", error)
            yield str(error)


def working_target(item: LabelledImage, size: int) -> np.ndarray:
    """The uint8 class map (:data:`BACKGROUND`, :data:`LUNG`, :data:`IGNORE`) at ``size``."""
    classes = np.where(item.lung, LUNG, BACKGROUND).astype(np.uint8)
    classes[item.ignore] = IGNORE  # V7 gives each pixel one class: never lung and ignored
    resized = Image.fromarray(classes).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(resized)


@dataclass(frozen=True)
class Augmentation:
    """Random geometry and exposure changes. No flips: a mirrored chest puts the heart on the
    right, which real frontal films (dextrocardia aside) never show, and the network should
    learn that the left lung is the smaller one."""

    degrees: float = 8.0
    translate: float = 0.06
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.3
    contrast: float = 0.3
    gamma: tuple[float, float] = (0.7, 1.4)

    def build(self) -> v2.Compose:
        return v2.Compose(
            [
                v2.RandomAffine(self.degrees, (self.translate, self.translate), self.scale),
                v2.ColorJitter(brightness=self.brightness, contrast=self.contrast),
            ]
        )


def working_arrays(
    records: Sequence[ImageRecord], v7: V7LungMasks | None, size: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Working-size pixels ``(N, S, S)`` and class maps ``(N, S, S)`` of the usable records,
    and the messages of the skipped ones (full-resolution images are not kept in memory)."""
    pixels, targets, skipped = [], [], []
    for item in load_all(records, v7):
        if isinstance(item, str):
            skipped.append(item)
            continue
        pixels.append(to_working_pixels(item.image, size))
        targets.append(working_target(item, size))
    if not pixels:
        raise ValueError(f"none of the {len(records)} labelled images could be used")
    return np.stack(pixels), np.stack(targets), skipped


class WorkingSet(Dataset):
    """Images and class maps resized once to the working size, held in memory; each item is
    ``(standardised image (1, S, S) float, class map (S, S) long)``, augmented when an
    :class:`Augmentation` is given (random draws from torch's RNG: seed it)."""

    def __init__(
        self,
        pixels: np.ndarray,
        targets: np.ndarray,
        augmentation: Augmentation | None = None,
    ) -> None:
        self.pixels, self.targets = pixels, targets
        self.augmentation = augmentation
        self.transform: Callable | None = augmentation.build() if augmentation else None

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pixels, target = self.pixels[index], self.targets[index]
        if self.transform is not None:
            image, mask = self.transform(
                tv_tensors.Image(torch.from_numpy(pixels)[None]),
                tv_tensors.Mask(torch.from_numpy(target)),
            )
            low, high = np.log(self.augmentation.gamma)
            gamma = float(torch.empty(()).uniform_(low, high).exp())  # torch's seeded RNG
            pixels = np.round(255.0 * (image[0].numpy() / 255.0) ** gamma).astype(np.uint8)
            target = mask.numpy()
        image = torch.from_numpy(standardise(pixels))[None]
        return image, torch.from_numpy(np.ascontiguousarray(target)).long()
