"""What pretrained weights were trained on, and whether evaluated data may have been among it.

Corpora are named canonically (:data:`CORPORA`); names as sources and manifests spell them
(``chex``, ``CheXpert-v1.0-small``, ``NIH ChestX-ray14``, ``Kaggle RSNA``…) are matched through the
alias table. Several corpora are relabellings of another's images (RSNA Pneumonia, SIIM-ACR
and Google's labels are NIH ChestX-ray14 images), so overlap is decided on image collections.
The evaluation's notes (:mod:`deepcovid.results.evaluation`) carry :func:`overlap_note`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Corpus:
    """A pretraining corpus: the names it goes by and the image collection it is drawn from."""

    aliases: tuple[str, ...]
    images_of: str


CORPORA: dict[str, Corpus] = {
    "ImageNet-1k": Corpus(("imagenet", "ilsvrc", "in1k"), "ImageNet"),
    "ImageNet-22k": Corpus(("imagenet22k", "in22k"), "ImageNet"),
    "NIH ChestX-ray14": Corpus(("nih", "chestxray14", "chestxray8", "nihcxr"), "NIH ChestX-ray14"),
    "Google (NIH relabelled)": Corpus(("google",), "NIH ChestX-ray14"),
    "RSNA Pneumonia (Kaggle)": Corpus(("rsna",), "NIH ChestX-ray14"),
    "SIIM-ACR Pneumothorax": Corpus(("siim",), "NIH ChestX-ray14"),
    "CheXpert": Corpus(("chexpert", "chex"), "CheXpert"),
    "MIMIC-CXR": Corpus(("mimic",), "MIMIC-CXR"),
    "PadChest": Corpus(("padchest", "pc"), "PadChest"),
    "OpenI": Corpus(("openi", "indiana"), "OpenI"),
    "VinDr-CXR": Corpus(("vindr", "vin"), "VinDr-CXR"),
}


def tokens(name: str) -> list[str]:
    """Lower-case alphanumeric words, plus the whole name squeezed (``ChestX-ray14``)."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    return [*words, "".join(words)]


def canonical_corpus(name: str) -> str | None:
    """The corpus ``name`` refers to (a canonical name or any alias), or None."""
    if name in CORPORA:
        return name
    found = tokens(name)
    for corpus, entry in CORPORA.items():
        if any(word.startswith(alias) if len(alias) > 3 else word == alias
               for alias in entry.aliases for word in found):  # fmt: skip
            return corpus
    return None


def pretraining_overlap(pretrained_on: Iterable[str], sources: Iterable[str]) -> dict[str, str]:
    """Each data source whose images may be in a pretraining corpus → that corpus."""
    collections = {}
    for corpus in pretrained_on:
        known = canonical_corpus(corpus)
        if known is not None:
            collections.setdefault(CORPORA[known].images_of, known)
    overlap = {}
    for source in sources:
        known = canonical_corpus(str(source))
        if known is not None and CORPORA[known].images_of in collections:
            overlap[str(source)] = collections[CORPORA[known].images_of]
    return overlap


def overlap_note(pretrained_on: Iterable[str], sources: Iterable[str], split: str) -> str | None:
    """The warning ``report.md`` and the log carry when evaluated images may have been seen in
    pretraining, or None."""
    overlap = pretraining_overlap(pretrained_on, sources)
    if not overlap:
        return None
    pairs = "; ".join(f"source '{s}' is drawn from {c}" for s, c in overlap.items())
    return (
        f"The {split} images may have been seen in pretraining: {pairs}, and the starting "
        "weights were trained on it. Such images can score well without the model having "
        "learned anything from this task; evaluate on a source outside the pretraining corpora."
    )
