"""Checkpoints: written atomically, read without unpickling arbitrary objects, and refused with
one clear error when truncated or damaged.

Writing: Lightning's ``TorchCheckpointIO`` saves through ``_atomic_save``, an fsspec transaction
that writes a temporary file in the *system* temp folder and ``shutil.move``s it into place: a
rename only when ``TMPDIR`` is on the checkpoint's filesystem, otherwise a copy that a crash
can cut short at the destination, and never fsynced. :class:`AtomicCheckpointIO` writes the
temporary file beside the target, fsyncs it and renames it.

Reading: checkpoints (torch's zip format; the legacy format is refused with the conversion) are
read with ``torch.load(weights_only=True)``: tensors and plain values
only, so a malicious file cannot run code. A checkpoint that holds other Python objects is
refused with :class:`UnsafeCheckpointError` unless ``allow_pickle=True`` is passed for a trusted
file. Nothing from a checkpoint is instantiated by name: Lightning passes only the
hyper-parameters that ``CovidClassifier.__init__`` accepts (plain values; the optimizer and
scheduler are never saved and are reset to None here), and refuses an ``_instantiator``
outside its allow-list (``lightning.pytorch.core.saving._ALLOWED_INSTANTIATORS``).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from deepcovid.models.classifier import CovidClassifier
from deepcovid.models.record import CHECKPOINT_KEY, MissingRecordError, ModelRecord
from deepcovid.utils.files import atomic_path

# What torch.load raises for a truncated or damaged file ("PytorchStreamReader failed reading
# zip archive", an unexpected end of file, a bad zip).
DAMAGED = (RuntimeError, EOFError, zipfile.BadZipFile, ValueError)
# torch's legacy format begins with its magic number, pickled (protocol 2: LONG1, 10 bytes)
LEGACY_MAGIC = b"\x8a\x0a" + torch.serialization.MAGIC_NUMBER.to_bytes(10, "little")


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that only a full (code-executing) unpickle could read."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file that is truncated or damaged; the message names it and what to do."""


class LegacyCheckpointError(RuntimeError):
    """A checkpoint in torch's legacy (pre-1.6, non-zip) format; the message says how to
    convert it."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local saves go through a temporary file and a rename."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):  # remote: Lightning's own way
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_path(path) as partial:
            torch.save(checkpoint, partial)


def refusal(path: Path, error: pickle.UnpicklingError) -> UnsafeCheckpointError:
    """The error that explains why ``path`` is refused and how to proceed."""
    detail = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return UnsafeCheckpointError(
        f"{path}: holds Python objects that a weights-only load refuses ({detail}). Unpickling "
        "them would run code from the file. If you trust where it comes from, pass "
        "allow_pickle=true; then re-export it as plain weights with python -m deepcovid.export "
        f"ckpt_path={path} format=safetensors allow_pickle=true"
    )


def damaged(path: Path, error: Exception) -> CorruptCheckpointError:
    """The error for a file that torch cannot read as a checkpoint."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CorruptCheckpointError(
        f"{path}: not a readable checkpoint ({detail}). The file is truncated or damaged (a copy "
        "cut short, a disk that filled up): copy it again from where it was written, or use "
        "another checkpoint of the run."
    )


def is_legacy(path: Path) -> bool:
    """Whether ``path`` starts like torch's legacy format: a pickle protocol mark, then torch's
    pickled magic number (read as bytes, never unpickled)."""
    with path.open("rb") as handle:
        head = handle.read(32)
    return head[:1] == pickle.PROTO and LEGACY_MAGIC in head


def legacy(path: Path) -> LegacyCheckpointError:
    """The error for a checkpoint in the legacy format, with the conversion."""
    return LegacyCheckpointError(
        f"{path}: a checkpoint in torch's legacy format (torch.save with "
        "_use_new_zipfile_serialization=False, or torch < 1.6), which deepcovid does not read. "
        'Convert it once, in an environment where you trust the file: python -c "import torch; '
        f"torch.save(torch.load('{path}', weights_only=True), 'converted.ckpt')\" (weights_only="
        "False only if it holds other Python objects and you trust it), then pass "
        "ckpt_path=converted.ckpt."
    )


def existing(ckpt_path: str | Path) -> Path:
    """``ckpt_path`` as a Path, or a FileNotFoundError naming it."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such checkpoint file")
    return path


def read_checkpoint(ckpt_path: str | Path, allow_pickle: bool = False) -> dict:
    """The checkpoint dictionary, read weights-only unless ``allow_pickle`` (memory-mapped, so
    checking a large file costs little)."""
    path = existing(ckpt_path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle, mmap=True)
    except pickle.UnpicklingError as error:
        raise refusal(path, error) from error
    except DAMAGED as error:
        raise (legacy(path) if is_legacy(path) else damaged(path, error)) from error


def read_record(ckpt_path: str | Path, allow_pickle: bool = False) -> ModelRecord:
    """The :class:`ModelRecord` stored in a checkpoint."""
    stored = read_checkpoint(ckpt_path, allow_pickle)
    if CHECKPOINT_KEY not in stored:
        raise MissingRecordError(
            f"{ckpt_path}: holds no deepcovid record (preprocessing, thresholds, data): it was "
            "not written by this version's python -m deepcovid.train. Train it again, or load "
            "its weights with deepcovid.models.checkpoints.read_checkpoint."
        )
    try:
        return ModelRecord.from_checkpoint(stored[CHECKPOINT_KEY])
    except MissingRecordError as error:
        raise MissingRecordError(f"{ckpt_path}: {error}") from error


def load_classifier(
    ckpt_path: str | Path,
    map_location: str = "cpu",
    allow_pickle: bool = False,
    **overrides: Any,
) -> CovidClassifier:
    """A :class:`CovidClassifier` in eval mode, its weights and record from ``ckpt_path``.

    The backbone is built without downloading pretrained weights: they are overwritten anyway.
    ``overrides`` replace stored hyper-parameters that do not change the network (e.g.
    ``full_precision_eval``).
    """
    path = existing(ckpt_path)
    read_checkpoint(path, allow_pickle)  # one clear error for a damaged or unsafe file
    try:
        model = CovidClassifier.load_from_checkpoint(
            path,
            map_location=map_location,
            weights_only=not allow_pickle,
            pretrained=False,
            weights_path=None,
            optimizer=None,
            scheduler=None,
            **overrides,
        )
    except pickle.UnpicklingError as error:
        raise refusal(path, error) from error
    if model.record is None:
        model.record = read_record(path, allow_pickle)
    return model.eval()


def stopped_mid_epoch(stored: dict) -> bool:
    """Whether a checkpoint was saved inside an epoch: its fit loop had started an epoch that it
    had not finished (``callbacks/safety.py``'s ``interrupted.ckpt``, written when a fit stops on
    SIGTERM, an error or a non-finite loss). Epoch-end checkpoints and files without the loop
    state (weights only) are not."""
    fit_loop = stored.get("loops", {}).get("fit_loop", {})
    progress = fit_loop.get("epoch_progress", {}).get("total", {})
    return progress.get("started", 0) > progress.get("processed", 0)


def newest_intact(directory: str | Path) -> Path | None:
    """The most recently written checkpoint in ``directory`` that reads, else None."""
    for candidate in sorted(Path(directory).glob("*.ckpt"), key=lambda p: -p.stat().st_mtime):
        try:
            read_checkpoint(candidate)
        except (CorruptCheckpointError, UnsafeCheckpointError, LegacyCheckpointError):
            continue
        return candidate
    return None


def resume_checkpoint(ckpt_path: str, checkpoint_dir: str | Path) -> str:
    """The file to resume from: ``last`` means ``checkpoint_dir/last.ckpt``. A damaged file
    stops the run here, naming the newest intact checkpoint of the run to resume from."""
    path = Path(checkpoint_dir) / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    try:
        read_checkpoint(path)
    except CorruptCheckpointError as error:
        intact = newest_intact(path.parent)
        hint = (
            f" The newest intact checkpoint of this run is {intact}: resume with "
            f"ckpt_path={intact}."
            if intact
            else " No intact checkpoint is left in that folder."
        )
        raise CorruptCheckpointError(f"{error}{hint}") from error
    return str(path)
