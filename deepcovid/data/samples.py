"""Sample tables: one row per image (path, label, split, patient_id, source, finding, lung_mask,
and the confounder metadata of :mod:`deepcovid.data.metadata`: view, sex, age, …).

A sample table is a :class:`pandas.DataFrame` built from a COVID-Xray-5k style folder,
a generic class-folder tree, or a CSV manifest. Labels are integers: 1 = COVID, 0 = non-COVID.
"""

from __future__ import annotations

import errno
import io
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from deepcovid.data import metadata
from deepcovid.data.io import DICOM_SUFFIXES, IMAGE_SUFFIXES, is_image_file
from deepcovid.utils.files import printable

COLUMNS = [
    "path", "label", "split", "patient_id", "source", "finding", "lung_mask", *metadata.COLUMNS
]  # fmt: skip
SPLITS = ("train", "val", "test")
# Manifest ``split`` values (stripped, lower-cased) and the split each one names; empty = unset.
SPLIT_NAMES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
MANIFEST_FORMAT = (
    "a header line path,label (optionally also patient_id, split, source, finding, lung_mask, "
    "view, sex, age, institution, manufacturer) and one row per image"
)
DEFAULT_POSITIVE_NAMES = ("covid", "covid-19", "covid19", "positive", "1")
DEFAULT_NEGATIVE_NAMES = ("non", "non-covid", "noncovid", "normal", "negative", "0")
IMAGE_SUFFIXES_TEXT = ", ".join(sorted(IMAGE_SUFFIXES))
UNSUPPORTED = "not an image type deepcovid reads"
SHOWN_SKIPS = 10  # skipped files named in the log; every one is in the data check's report
log = logging.getLogger(__name__)


class DatasetLayoutError(ValueError):
    """The data on disk does not match any layout deepcovid reads; the message says why."""


class LabelMap:
    """Maps class names (folder names, manifest labels) to 1 = COVID / 0 = non-COVID."""

    def __init__(
        self,
        positive: Sequence[str] = DEFAULT_POSITIVE_NAMES,
        negative: Sequence[str] = DEFAULT_NEGATIVE_NAMES,
    ) -> None:
        self.lookup = {str(n).lower(): 1 for n in positive} | {str(n).lower(): 0 for n in negative}

    def __contains__(self, name: object) -> bool:
        return str(name).strip().lower() in self.lookup

    def __call__(self, name: object) -> int:
        return self.lookup[str(name).strip().lower()]

    def unknown(self, names: Iterable[object]) -> list[str]:
        """The names this map cannot label, sorted."""
        return sorted({str(n) for n in names if n not in self})


def not_an_image(path: Path) -> str | None:
    """Why a folder scan does not read ``path`` (a broken link, a linked folder, an unsupported
    type), or None when it is an image file to read."""
    try:
        path.stat()  # follows links
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symlink loop"
        if path.is_symlink() and error.errno == errno.ENOENT:
            return f"a dangling symlink (to {printable(os.readlink(path))}, which does not exist)"
        return f"unreadable ({error.strerror})"
    if path.is_dir():
        return "a symlink to a folder, not followed: link the image files instead"
    if not path.is_file() or not is_image_file(path):
        return f"{UNSUPPORTED} ({path.suffix.lower() or 'no suffix'}; read: {IMAGE_SUFFIXES_TEXT})"
    return None


def list_images(folder: Path, skipped: dict[str, str] | None = None) -> list[Path]:
    """All image files below ``folder``, recursively, in a stable order. Every other file (and
    broken link) is logged by name with the reason, and added to ``skipped`` when given."""
    images, passed = [], {}
    for path in sorted(folder.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        reason = not_an_image(path)
        if reason is None:
            images.append(path)
        else:
            passed[printable(path)] = reason
    if passed:
        shown = "; ".join(f"{p}: {why}" for p, why in list(passed.items())[:SHOWN_SKIPS])
        more = f"; and {len(passed) - SHOWN_SKIPS} more" if len(passed) > SHOWN_SKIPS else ""
        log.warning("%s: %d file(s) not read: %s%s", folder, len(passed), shown, more)
    if skipped is not None:
        skipped.update(passed)
    return images


def list_inputs(inputs: str | Path) -> list[Path]:
    """The image files named by ``inputs`` (for prediction and segmentation): a file, a folder
    (searched recursively), or a CSV with a ``path`` column (relative paths resolve against the
    CSV's folder)."""
    inputs = Path(inputs)
    if inputs.is_dir():
        files = list_images(inputs)
        if not files:
            raise ValueError(f"inputs={inputs}: the folder holds no images (.png, .jpg, .dcm)")
        return files
    if not inputs.is_file():
        raise FileNotFoundError(f"inputs={inputs}: no such file or folder")
    if inputs.suffix.lower() != ".csv":
        return [inputs]
    frame = read_csv_cells(inputs, f"inputs={inputs}", "a header line path and one row per image")
    if "path" not in frame.columns:
        raise ValueError(
            f"inputs={inputs}: the CSV has columns {list(frame.columns)}; it needs a 'path' column"
        )
    if frame.empty:
        raise ValueError(f"inputs={inputs}: the CSV has a header but no rows: list the images")
    return [resolve(inputs.parent, p) for p in frame["path"]]


def scan_class_folders(
    root: Path, split: str | None, labels: LabelMap, skipped: dict[str, str] | None = None
) -> pd.DataFrame:
    """Rows for ``root/<class>/**/image`` with the label taken from the class folder name; files
    not read are added to ``skipped`` (name → why)."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = labels.unknown(p.name for p in class_dirs)
    if unknown:
        raise DatasetLayoutError(
            f"{root}: class folders {unknown} are neither COVID nor non-COVID. Rename them, or "
            "add them to data.positive_names / data.negative_names."
        )
    rows = []
    for class_dir in class_dirs:
        images = list_images(class_dir, skipped)
        if not images:
            raise DatasetLayoutError(
                f"{class_dir}: the class folder holds no images (.png, .jpg, .jpeg, .dcm). "
                "Add images or remove the folder."
            )
        rows += [{"path": str(p), "label": labels(class_dir.name), "split": split} for p in images]
    return pd.DataFrame(rows, columns=["path", "label", "split"])


def scan_folders(
    root: str | Path, labels: LabelMap | None = None, skipped: dict[str, str] | None = None
) -> pd.DataFrame:
    """Sample table of a folder tree.

    ``root/{train,val,test}/<class>/`` (COVID-Xray-5k: ``train/covid``, ``train/non``, …) keeps
    the given splits; ``root/<class>/`` yields rows whose split is left for the caller to carve.
    Files not read (broken links, other types) are logged and added to ``skipped``.
    """
    root = Path(root)
    labels = labels or LabelMap()
    if not root.is_dir():
        raise DatasetLayoutError(
            f"{root}: no such data folder. Point data.root at a COVID-Xray-5k style folder "
            "(train/covid, train/non, test/covid, test/non) or a CSV manifest "
            "(data.manifest=FILE), or set data.download=true to fetch COVID-Xray-5k."
        )
    split_dirs = [root / s for s in SPLITS if (root / s).is_dir()]
    if split_dirs and not (root / "train").is_dir():
        raise DatasetLayoutError(
            f"{root}: has {[d.name for d in split_dirs]} but no train/ folder. Add "
            "train/<class>/ images, or point data.root at the folder that holds train/."
        )
    if split_dirs and not (root / "test").is_dir():
        log.warning(
            "%s has no test/ folder: a test split is carved out of train/ "
            "(data.test_fraction), so results are not comparable with the official split",
            root,
        )
    if split_dirs:
        parts = [scan_class_folders(d, d.name, labels, skipped) for d in split_dirs]
        table = pd.concat(parts, ignore_index=True)
    else:
        table = scan_class_folders(root, None, labels, skipped)
    if table.empty:
        raise DatasetLayoutError(f"{root}: found no images.")
    return normalise(table)


def split_from_path(relative: str) -> str | None:
    """The split named by a manifest path's first folder (``train/covid/x.png`` → train)."""
    first = Path(relative).parts[0] if Path(relative).parts else ""
    return first if first in SPLITS else None


def read_manifest(manifest: str | Path, labels: LabelMap | None = None) -> pd.DataFrame:
    """Sample table of a CSV manifest with columns ``path,label`` and optionally
    ``patient_id``, ``split``, ``source``, ``finding``, ``lung_mask``, and the metadata
    ``view``, ``sex``, ``age``, ``institution``, ``manufacturer`` (:mod:`deepcovid.data.metadata`).

    Relative paths are resolved against the manifest's folder. Without a ``split`` column the
    split comes from the path's first folder when that is train/val/test.
    """
    manifest = Path(manifest)
    labels = labels or LabelMap()
    if not manifest.is_file():
        raise DatasetLayoutError(f"{manifest}: no such manifest file.")
    frame = read_csv_cells(manifest, str(manifest), MANIFEST_FORMAT)
    missing = {"path", "label"} - set(frame.columns)
    if missing:
        raise DatasetLayoutError(
            f"{manifest}: missing column(s) {sorted(missing)}; a manifest needs {MANIFEST_FORMAT}."
        )
    if frame.empty:
        raise DatasetLayoutError(
            f"{manifest}: has a header but no rows. Add one row per image ({MANIFEST_FORMAT})."
        )
    check_manifest_rows(manifest, frame, labels)
    splits = frame["split"].str.strip().str.lower() if "split" in frame else None
    table = pd.DataFrame(
        {
            "path": [str(resolve(manifest.parent, p)) for p in frame["path"]],
            "label": [labels(v) for v in frame["label"]],
            "split": frame["path"].map(split_from_path)
            if splits is None
            else splits.map(lambda v: SPLIT_NAMES.get(v)),
        }
    )
    for column in ("patient_id", "source", "finding"):
        if column in frame:
            table[column] = frame[column].replace("", None)
    table = table.join(metadata.parsed(frame))
    if "lung_mask" in frame:  # a mask image per row (a path, relative to the manifest's folder)
        table["lung_mask"] = [
            str(resolve(manifest.parent, m)) if m.strip() else None for m in frame["lung_mask"]
        ]
    return normalise(table)


def read_csv_cells(csv: Path, name: str, needs: str) -> pd.DataFrame:
    """Every cell of ``csv`` as a string (UTF-8, with or without a byte-order mark); an empty,
    non-UTF-8 or malformed file is a :class:`DatasetLayoutError` naming it (as ``name``) and
    the fix (``needs``: what the file must hold)."""
    raw = csv.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DatasetLayoutError(
            f"{name}: is not UTF-8 text (byte 0x{raw[error.start]:02x} on line {line}; Latin-1 "
            "or Windows-1252, as some spreadsheets save CSV). Save it as 'CSV UTF-8', or "
            f"convert it: iconv -f latin1 -t utf-8 {printable(csv)} > utf8.csv"
        ) from None
    if not text.strip():
        raise DatasetLayoutError(f"{name}: the file is empty. It needs {needs}.")
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as error:
        raise DatasetLayoutError(
            f"{name}: not a readable CSV ({error}). It needs {needs}."
        ) from None


def csv_lines(rows: pd.Series) -> str:
    """The CSV line numbers of ``rows`` (header = line 1), e.g. ``lines 3, 7``."""
    numbers = [str(i + 2) for i in rows.index]
    return f"line{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"


def check_manifest_rows(manifest: Path, frame: pd.DataFrame, labels: LabelMap) -> None:
    """Refuse empty paths, unknown labels and duplicate paths, naming every offending row.

    Missing files are left to the one read of every file
    (:func:`deepcovid.data.cache.inspect_file`), so that ``data.on_bad_file`` decides whether
    they stop the run or are skipped.
    """
    problems = []
    empty = frame[frame["path"].str.strip() == ""]
    if not empty.empty:
        problems.append(f"empty path at {csv_lines(empty)}: fill it in or delete the row")
    unknown = frame[~frame["label"].map(lambda label: label in labels)]
    if not unknown.empty:
        problems.append(
            f"unknown label(s) {labels.unknown(unknown['label'])} at {csv_lines(unknown)}: use "
            "covid / non-covid, or add them to data.positive_names / data.negative_names"
        )
    if "split" in frame:
        values = frame["split"].str.strip().str.lower()
        odd = frame[(values != "") & ~values.isin(list(SPLIT_NAMES))]
        if not odd.empty:
            problems.append(
                f"unknown split value(s) {sorted(set(odd['split']))} at {csv_lines(odd)}: use "
                "train, val (valid, validation) or test (testing), or leave it empty to let "
                "deepcovid carve the split"
            )
    for column, odd in metadata.unknown_values(frame).items():
        problems.append(
            f"unknown {column} value(s) {sorted(set(odd))} at {csv_lines(odd)}: use "
            f"{metadata.ACCEPTED[column]}, or leave it empty when not known"
        )
    # one file however it is spelled: absolute, relative (to a relative manifest), via a symlink
    paths = frame["path"].map(lambda p: os.path.realpath(resolve(manifest.parent, p)))
    duplicated = frame[paths.duplicated(keep=False) & (frame["path"].str.strip() != "")]
    for path, rows in duplicated.groupby(paths[duplicated.index]):
        listed = ", ".join(
            f"{p!r} as {label!r}" for p, label in zip(rows["path"], rows["label"], strict=True)
        )
        problems.append(
            f"{path} is listed more than once ({csv_lines(rows)}) as {listed}: keep one row per "
            "image, with its one label"
        )
    if problems:
        raise DatasetLayoutError(
            f"{manifest}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)
        )


def resolve(base: Path, path: str) -> Path:
    """``path`` as is when absolute, else relative to ``base``."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else base / candidate


def normalise(table: pd.DataFrame) -> pd.DataFrame:
    """Give a sample table every column of :data:`COLUMNS`, in order, with clean dtypes; DICOM
    rows' metadata not given is read from their headers."""
    table = metadata.with_metadata(table, DICOM_SUFFIXES)
    for column in COLUMNS:
        if column not in table:
            table[column] = None
    table["label"] = table["label"].astype(int)
    table["split"] = table["split"].astype(object).where(table["split"].notna(), None)
    return table[COLUMNS].reset_index(drop=True)
