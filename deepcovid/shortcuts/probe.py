"""Source tests: can the model's penultimate features tell the image's source apart (a linear
probe, patient-grouped cross-validation), how well does it separate the classes within each
source, and are label and source confounded (a source holding one class only)?"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from deepcovid import CLASS_TITLES
from deepcovid.data.splits import patient_groups
from deepcovid.metrics.bootstrap import bootstrap_interval
from deepcovid.metrics.discrimination import auroc
from deepcovid.metrics.operating_points import NO_INTERVAL, Interval
from deepcovid.metrics.undefined import UndefinedMetric

MAX_FOLDS = 5


class PenultimateFeatures:
    """Within its ``with`` block, captures the input of a network's classification head."""

    def __init__(self, net: nn.Module, head: str) -> None:
        self.head = net.get_submodule(head)
        self.captured: torch.Tensor | None = None

    def keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.captured = inputs[0].detach().flatten(1).float().cpu()

    def __enter__(self) -> PenultimateFeatures:
        self.handle = self.head.register_forward_hook(self.keep)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


@dataclass(frozen=True)
class ClassProbe:
    """The probe within the images of one class: accuracy against its most common source."""

    accuracy: float
    majority_rate: float
    n_sources: int
    n: int


@dataclass(frozen=True)
class SourceProbe:
    """Cross-validated accuracy (and one-vs-rest AUROC) of predicting the source from the
    features, against always guessing the most common source and against the label alone
    (each class's most common source, the same folds): where sources hold one class, the label
    names the source, and only what the features add beyond it says they read the source.
    ``within_class``: the probe within each class's images (``within_class_undefined``: why
    not, per class)."""

    accuracy: float
    majority_rate: float
    auroc: float | None
    n_sources: int
    n_folds: int
    n: int
    label_only_accuracy: float
    within_class: dict[str, ClassProbe] = field(default_factory=dict)
    within_class_undefined: dict[str, str] = field(default_factory=dict)

    @property
    def baseline(self) -> float:
        """The better of always naming the most common source and the label alone."""
        return max(self.majority_rate, self.label_only_accuracy)


@dataclass(frozen=True)
class SourceAuroc:
    """The AUROC within one source (with its patient bootstrap interval), or why there is none
    (one class only)."""

    source: str
    n: int
    n_positive: int
    auroc: float | None
    reason: str | None = None
    auroc_ci: Interval = NO_INTERVAL


@dataclass(frozen=True)
class Confounding:
    """Sources that hold one class only, and the share of images in them."""

    single_class_sources: dict[str, str] = field(default_factory=dict)  # source → its class
    share_of_images: float = 0.0


def probed_sources(groups: np.ndarray, sources: np.ndarray) -> pd.Series:
    """Patients per source, of the sources with at least two (a source of one patient cannot be
    cross-validated); :class:`UndefinedMetric` when fewer than two such sources remain."""
    per_source = pd.Series(groups).groupby(sources).nunique()
    kept = per_source[per_source >= 2]
    if len(kept) < 2:
        few = sorted(set(per_source.index) - set(kept.index))
        raise UndefinedMetric(
            f"{len(kept)} source(s) with at least 2 patients ({', '.join(kept.index)}); too few "
            f"to cross-validate: {', '.join(few) or 'none'}"
        )
    return kept


def cross_validated(
    features: np.ndarray, codes: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> np.ndarray:
    """Out-of-fold probabilities of each source code from a logistic-regression probe."""
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    probabilities = np.zeros((len(codes), int(codes.max()) + 1))
    for train, held in splitter.split(features, codes, groups):
        probe = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)
        )
        probe.fit(features[train], codes[train])
        probabilities[np.ix_(held, probe.classes_)] = probe.predict_proba(features[held])
    return probabilities


def class_probe(features: np.ndarray, rows: pd.DataFrame, seed: int) -> ClassProbe:
    """The probe within one class's images (:class:`UndefinedMetric` as for the whole set)."""
    groups = patient_groups(rows)
    sources = rows["source"].astype(str).to_numpy()
    kept = probed_sources(groups, sources)
    use = np.isin(sources, kept.index)
    codes = np.searchsorted(np.array(sorted(kept.index)), sources[use])
    n_folds = int(min(MAX_FOLDS, kept.min()))
    found = cross_validated(features[use], codes, groups[use], n_folds, seed)
    majority = float(np.bincount(codes).max() / len(codes))
    return ClassProbe(float((found.argmax(1) == codes).mean()), majority, len(kept), len(codes))


def source_probe(features: np.ndarray, rows: pd.DataFrame, seed: int = 0) -> SourceProbe:
    """The probe, over the sources with at least two patients, against the label alone, and
    within each class; :class:`UndefinedMetric` when fewer than two such sources remain."""
    groups = patient_groups(rows)
    sources = rows["source"].astype(str).to_numpy()
    kept = probed_sources(groups, sources)
    use = np.isin(sources, kept.index)
    names = np.array(sorted(kept.index))
    codes = np.searchsorted(names, sources[use])
    label = rows["label"].to_numpy(dtype=int)[use]
    n_folds = int(min(MAX_FOLDS, kept.min()))
    probabilities = cross_validated(features[use], codes, groups[use], n_folds, seed)
    by_label = cross_validated(label[:, None].astype(float), codes, groups[use], n_folds, seed)
    try:
        score = (
            roc_auc_score(codes, probabilities[:, 1])
            if len(names) == 2
            else roc_auc_score(codes, probabilities, multi_class="ovr", labels=range(len(names)))
        )
    except ValueError:
        score = None
    within, undefined = {}, {}
    for value in (1, 0):
        of_class = (rows["label"].to_numpy(dtype=int) == value) & use
        try:
            within[CLASS_TITLES[value]] = class_probe(features[of_class], rows[of_class], seed)
        except (UndefinedMetric, ValueError) as reason:
            undefined[CLASS_TITLES[value]] = str(reason)
    return SourceProbe(
        accuracy=float((probabilities.argmax(1) == codes).mean()),
        majority_rate=float(np.bincount(codes).max() / len(codes)),
        auroc=score,
        n_sources=len(names),
        n_folds=n_folds,
        n=len(codes),
        label_only_accuracy=float((by_label.argmax(1) == codes).mean()),
        within_class=within,
        within_class_undefined=undefined,
    )


def within_source(
    rows: pd.DataFrame, resamples: int, confidence: float, seed: int
) -> list[SourceAuroc]:
    """The AUROC within each source with its (patient) bootstrap interval; a source with one
    class is reported as such."""
    found = []
    for source, group in rows.groupby("source", sort=True):
        label = group["label"].to_numpy(dtype=int)
        prob = group["prob_covid"].to_numpy(dtype=np.float64)
        positives = int(label.sum())
        try:
            value = auroc(label, prob)
        except UndefinedMetric:
            only = CLASS_TITLES[int(positives > 0)]
            reason = f"only {only} images: sensitivity or specificity only"
            found.append(SourceAuroc(str(source), len(group), positives, None, reason))
            continue
        ids = group["patient_id"].to_numpy() if group["patient_id"].notna().any() else None
        try:
            drawn = bootstrap_interval(label, prob, auroc, ids, resamples, confidence, seed)
            ci, reason = (drawn.low, drawn.high), None
        except UndefinedMetric as why:
            ci, reason = NO_INTERVAL, f"no interval: {why}"
        found.append(SourceAuroc(str(source), len(group), positives, value, reason, ci))
    return found


def confounding(rows: pd.DataFrame) -> Confounding:
    """Sources holding one class only, and the share of the images they hold."""
    single = {}
    affected = 0
    for source, group in rows.groupby("source", sort=True):
        classes = set(group["label"].astype(int))
        if len(classes) == 1:
            single[str(source)] = CLASS_TITLES[classes.pop()]
            affected += len(group)
    return Confounding(single, affected / len(rows) if len(rows) else 0.0)
