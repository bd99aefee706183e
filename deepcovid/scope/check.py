"""Is an input a frontal chest radiograph? ``in_scope`` and ``scope_reason`` per file.

    checker = load_checker()                       # the shipped weights, verified, loaded once
    verdicts = checker.check_paths(paths)          # {path: ScopeVerdict}, batched

A DICOM file is judged by its header first (:func:`header_reason`: Modality CR/DX,
ViewPosition PA/AP, BodyPartExamined CHEST, each only when present); every image then goes
through the image classifier (:mod:`deepcovid.scope.model`), in scope when P(frontal) reaches
the card's threshold. ``scope_reason`` is empty for an in-scope image, else says why, e.g.
"DICOM Modality CT" or "image check: lateral view (p=0.97)".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom
import torch
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from deepcovid.data.io import DICOM_SUFFIXES, UnreadableImageError, decode_image
from deepcovid.scope.model import CLASS_WORDS, CLASSES, IN_SCOPE, ScopeNet, model_input
from deepcovid.scope.weights import SHIPPED_WEIGHTS, load_network
from deepcovid.utils.system import available_cpus

log = logging.getLogger(__name__)
MODALITIES = {"CR", "DX"}  # computed and digital radiography
VIEW_POSITIONS = {"PA", "AP"}
BODY_PARTS = {"CHEST"}
OUT_OF_SCOPE_CHOICES = ("exclude", "keep", "error")  # data.out_of_scope
NOT_FRONTAL = "not a frontal chest radiograph"
NOT_ASSESSED = f"not assessed: {NOT_FRONTAL}"  # the call for such an image


@dataclass(frozen=True)
class ScopeVerdict:
    """Whether an image is a frontal chest radiograph, and why not ("" when it is)."""

    in_scope: bool
    reason: str = ""


IN_SCOPE_VERDICT = ScopeVerdict(True)


def header_reason(header: Dataset) -> str:
    """Why a DICOM header puts its image out of scope ("" when it does not); attributes that
    are absent or empty are not held against it."""
    checks = (
        ("Modality", MODALITIES),
        ("ViewPosition", VIEW_POSITIONS),
        ("BodyPartExamined", BODY_PARTS),
    )
    for keyword, accepted in checks:
        value = str(header.get(keyword, "") or "").strip().upper()
        if value and value not in accepted:
            return f"DICOM {keyword} {value}"
    return ""


def dicom_reason(path: Path) -> str:
    """:func:`header_reason` of a DICOM file ("" for other files and unreadable headers,
    which the image decoder then reports)."""
    if path.suffix.lower() not in DICOM_SUFFIXES:
        return ""
    try:
        return header_reason(pydicom.dcmread(path, stop_before_pixels=True))
    except (InvalidDicomError, OSError, ValueError):
        return ""


def read_small(path: Path, short_side: int) -> Image.Image:
    """The image, JPEGs decoded at a reduced DCT scale (the check needs few pixels)."""
    try:
        with path.open("rb") as handle:
            return decode_image(handle, path, short_side).image
    except OSError as error:
        raise UnreadableImageError(f"{path}: cannot be read ({error})") from error


class ScopeChecker:
    """A trained :class:`ScopeNet` with its working size and threshold."""

    def __init__(self, network: ScopeNet, working_size: int, threshold: float = 0.5) -> None:
        self.network = network.eval()
        self.working_size = working_size
        self.threshold = threshold

    @torch.inference_mode()
    def probabilities(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(N, len(CLASSES))`` class probabilities of 8-bit grayscale images."""
        batch = torch.stack([model_input(image, self.working_size) for image in images])
        return torch.softmax(self.network(batch).float(), dim=1)

    def verdict(self, probs: torch.Tensor) -> ScopeVerdict:
        """The verdict of one image's class probabilities."""
        if float(probs[IN_SCOPE]) >= self.threshold:
            return IN_SCOPE_VERDICT
        others = probs.clone()
        others[IN_SCOPE] = -1.0
        best = int(others.argmax())
        words = CLASS_WORDS[CLASSES[best]]
        return ScopeVerdict(False, f"image check: {words} (p={float(probs[best]):.2f})")

    def check_images(self, images: Sequence[Image.Image]) -> list[ScopeVerdict]:
        """The image check's verdict per image (one forward pass)."""
        if not images:
            return []
        return [self.verdict(p) for p in self.probabilities(images)]

    def check_paths(
        self, paths: Iterable[Path], batch_size: int = 64
    ) -> tuple[dict[Path, ScopeVerdict], dict[Path, str]]:
        """Verdicts of the readable ``paths`` (DICOM header first, then the image) and the
        unreadable ones with why; read in threads, checked in batches."""
        verdicts: dict[Path, ScopeVerdict] = {}
        unreadable: dict[Path, str] = {}
        pending: list[tuple[Path, Image.Image]] = []

        def read(path: Path) -> ScopeVerdict | Image.Image | str:
            reason = dicom_reason(path)
            if reason:
                return ScopeVerdict(False, reason)
            try:
                return read_small(path, 2 * self.working_size)
            except UnreadableImageError as error:
                return str(error)

        def flush() -> None:
            results = self.check_images([image for _, image in pending])
            verdicts.update((path, v) for (path, _), v in zip(pending, results, strict=True))
            pending.clear()

        paths = list(map(Path, paths))
        with ThreadPoolExecutor(available_cpus()) as pool:
            for path, found in zip(paths, pool.map(read, paths), strict=True):
                if isinstance(found, ScopeVerdict):
                    verdicts[path] = found
                elif isinstance(found, str):
                    unreadable[path] = found
                else:
                    pending.append((path, found))
                if len(pending) >= batch_size:
                    flush()
        flush()
        return verdicts, unreadable


def load_checker(weights: str | Path = SHIPPED_WEIGHTS) -> ScopeChecker:
    """A :class:`ScopeChecker` with verified ``weights`` (default: the shipped ones)."""
    network, card = load_network(weights)
    return ScopeChecker(network, card.working_size, card.threshold)


def scope_flag(flag: str, reason: str) -> str:
    """A quality flag with why the image is out of scope first, when ``reason`` says it is:
    "not a frontal chest radiograph: <reason>; <flag>"."""
    return "; ".join(part for part in (f"{NOT_FRONTAL}: {reason}" if reason else "", flag) if part)
