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

import json
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

from deepcovid.data.cache import FileFacts
from deepcovid.data.io import DICOM_SUFFIXES, UnreadableImageError, decode_image
from deepcovid.scope.model import CLASS_WORDS, CLASSES, IN_SCOPE, ScopeNet, model_input
from deepcovid.scope.weights import SHIPPED_WEIGHTS, load_network
from deepcovid.utils.files import write_json_atomic
from deepcovid.utils.system import available_cpus

log = logging.getLogger(__name__)
MODALITIES = {"CR", "DX"}  # computed and digital radiography
VIEW_POSITIONS = {"PA", "AP"}
BODY_PARTS = {"CHEST"}
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

    def __init__(
        self, network: ScopeNet, working_size: int, threshold: float, weights_sha256: str
    ) -> None:
        self.network = network.eval()
        self.working_size = working_size
        self.threshold = threshold
        self.weights_sha256 = weights_sha256

    def network_input(self, image: Image.Image) -> torch.Tensor:
        """The network's input for one 8-bit grayscale image."""
        return model_input(image, self.working_size)

    @torch.inference_mode()
    def probabilities(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(N, len(CLASSES))`` class probabilities of :meth:`network_input` tensors."""
        return torch.softmax(self.network(torch.stack(list(inputs))).float(), dim=1)

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
        return self.check_inputs([self.network_input(image) for image in images])

    def check_inputs(self, inputs: Sequence[torch.Tensor]) -> list[ScopeVerdict]:
        """The image check's verdict per :meth:`network_input` tensor (one forward pass)."""
        if not inputs:
            return []
        return [self.verdict(p) for p in self.probabilities(inputs)]

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


class VerdictStore:
    """Verdicts by file content (sha256) for one set of weights, kept in a JSON file in the
    cache folder, so an unchanged file is judged once. As a :class:`~deepcovid.data.cache.Probe`
    of a file scan it judges each image the scan decodes (batched), so the check costs no read
    of its own; :meth:`verdicts` reads only the files no scan showed it."""

    def __init__(self, folder: Path, checker: ScopeChecker, batch_size: int = 64) -> None:
        self.checker = checker
        self.batch_size = batch_size
        self.side = 2 * checker.working_size  # Probe: the decoded short side measure() needs
        self.path = folder / f"scope-{checker.weights_sha256[:16]}.json"
        kept = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.known = {digest: ScopeVerdict(*verdict) for digest, verdict in kept.items()}
        self.new: set[str] = set()
        self.pending: dict[str, torch.Tensor] = {}

    def measure(self, image: Image.Image) -> torch.Tensor:
        return self.checker.network_input(image)

    def take(self, path: str, facts: FileFacts, measured: torch.Tensor) -> None:
        digest = facts.sha256
        if digest is None or digest in self.known or digest in self.pending:
            return
        reason = dicom_reason(Path(path))
        if reason:
            self.add({digest: ScopeVerdict(False, reason)})
            return
        self.pending[digest] = measured
        if len(self.pending) >= self.batch_size:
            self.flush()

    def add(self, verdicts: dict[str, ScopeVerdict]) -> None:
        self.known |= verdicts
        self.new |= set(verdicts)

    def flush(self) -> None:
        """Judge the images waiting for a batch."""
        if not self.pending:
            return
        found = self.checker.check_inputs(list(self.pending.values()))
        self.add(dict(zip(self.pending, found, strict=True)))
        self.pending.clear()

    def verdicts(self, digests: dict[str, str]) -> tuple[dict[Path, ScopeVerdict], dict[Path, str]]:
        """Verdicts of the files ``{path: sha256}`` (reading those not yet judged) and the
        unreadable ones with why; new verdicts are written to the store."""
        self.flush()
        todo = {Path(p): digest for p, digest in digests.items() if digest not in self.known}
        found, unreadable = self.checker.check_paths(todo) if todo else ({}, {})
        self.add({todo[p]: verdict for p, verdict in found.items()})
        if self.new:
            kept = {d: [v.in_scope, v.reason] for d, v in self.known.items()}
            write_json_atomic(kept, self.path)
            self.new.clear()
        held = {Path(p): self.known[d] for p, d in digests.items() if d in self.known}
        return held, unreadable


def load_checker(weights: str | Path = SHIPPED_WEIGHTS) -> ScopeChecker:
    """A :class:`ScopeChecker` with verified ``weights`` (default: the shipped ones)."""
    network, card = load_network(weights)
    return ScopeChecker(network, card.working_size, card.threshold, card.sha256)


def scope_flag(flag: str, reason: str) -> str:
    """A quality flag with why the image is out of scope first, when ``reason`` says it is:
    "not a frontal chest radiograph: <reason>; <flag>"."""
    return "; ".join(part for part in (f"{NOT_FRONTAL}: {reason}" if reason else "", flag) if part)
