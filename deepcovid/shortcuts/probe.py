"""Can the model's penultimate features tell a grouping of the images (source, view, sex, …)
apart? A linear probe, patient-grouped cross-validation, judged against the label alone and run
within each class. Each image's out-of-fold call goes into ``images.csv``."""

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


def call_columns(column: str) -> dict[str, str]:
    """The ``images.csv`` columns of one grouping's probe: each image's out-of-fold call by the
    features, by the label alone, and by the features within its class (empty: not probed)."""
    return {
        "features": f"{column}_probe",
        "label_only": f"{column}_probe_label_only",
        "within_class": f"{column}_probe_within_class",
    }


@dataclass(frozen=True)
class ClassProbe:
    """The probe within the images of one class: accuracy against its most common value."""

    accuracy: float
    majority_rate: float
    n_values: int
    n: int


@dataclass(frozen=True)
class GroupProbe:
    """Cross-validated accuracy (and one-vs-rest AUROC) of predicting ``column`` from the
    features, against always guessing its most common value and against the label alone (each
    class's most common value, the same folds): where values hold one class, the label names
    the value, and only what the features add beyond it says they read it. ``within_class``:
    the probe within each class's images (``within_class_undefined``: why not, per class)."""

    column: str
    accuracy: float
    majority_rate: float
    auroc: float | None
    n_values: int
    n_folds: int
    n: int
    label_only_accuracy: float
    within_class: dict[str, ClassProbe] = field(default_factory=dict)
    within_class_undefined: dict[str, str] = field(default_factory=dict)
    images_without_id: int = 0  # each its own group in the folds

    @property
    def folds_text(self) -> str:
        """How the folds were grouped, and what that means for the probe."""
        if self.images_without_id == 0:
            return f"{self.n_folds} patient-grouped folds"
        if self.images_without_id == self.n:
            return (
                f"{self.n_folds} image-level folds (no image has a patient id, so one patient's "
                "images can sit in the fitted and the held-out folds, and the probe can name the "
                "patient rather than what it is asked)"
            )
        return (
            f"{self.n_folds} patient-grouped folds ({self.images_without_id} images without a "
            "patient id each counted as a patient of their own)"
        )

    @property
    def baseline(self) -> float:
        """The better of always naming the most common value and the label alone."""
        return max(self.majority_rate, self.label_only_accuracy)


def probed_values(groups: np.ndarray, values: np.ndarray, column: str) -> pd.Series:
    """Patients per value, of the values with at least two (a value of one patient cannot be
    cross-validated); :class:`UndefinedMetric` when fewer than two such values remain."""
    per_value = pd.Series(groups).groupby(values).nunique()
    kept = per_value[per_value >= 2]
    if len(kept) < 2:
        few = sorted(set(per_value.index) - set(kept.index))
        raise UndefinedMetric(
            f"{len(kept)} {column} value(s) with at least 2 patients ({', '.join(kept.index)}); "
            f"too few to cross-validate: {', '.join(few) or 'none'}"
        )
    return kept


def cross_validated(
    features: np.ndarray, codes: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> np.ndarray:
    """Out-of-fold probabilities of each value code from a logistic-regression probe."""
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    probabilities = np.zeros((len(codes), int(codes.max()) + 1))
    for train, held in splitter.split(features, codes, groups):
        probe = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)
        )
        probe.fit(features[train], codes[train])
        probabilities[np.ix_(held, probe.classes_)] = probe.predict_proba(features[held])
    return probabilities


class Coded:
    """The images of the values a probe can use: which rows, their value codes, the names."""

    def __init__(self, rows: pd.DataFrame, column: str) -> None:
        self.groups = patient_groups(rows)
        values = rows[column].astype(str).to_numpy()
        kept = probed_values(self.groups, values, column)
        self.use = np.isin(values, kept.index)
        self.names = np.array(sorted(kept.index))
        self.codes = np.searchsorted(self.names, values[self.use])
        self.n_folds = int(min(MAX_FOLDS, kept.min()))

    def probabilities(self, features: np.ndarray, seed: int) -> np.ndarray:
        return cross_validated(
            features[self.use], self.codes, self.groups[self.use], self.n_folds, seed
        )

    def calls(self, probabilities: np.ndarray, n: int) -> np.ndarray:
        """Each of ``n`` rows' called value (None where not probed)."""
        out = np.full(n, None, dtype=object)
        out[self.use] = self.names[probabilities.argmax(1)]
        return out

    @property
    def majority_rate(self) -> float:
        return float(np.bincount(self.codes).max() / len(self.codes))


def group_probe(
    features: np.ndarray, rows: pd.DataFrame, column: str, seed: int = 0
) -> tuple[GroupProbe, pd.DataFrame]:
    """The probe of ``column`` over its values with at least two patients, against the label
    alone, and within each class, with each row's calls (:func:`call_columns`);
    :class:`UndefinedMetric` when fewer than two such values remain."""
    coded = Coded(rows, column)
    label = rows["label"].to_numpy(dtype=int)
    probabilities = coded.probabilities(features, seed)
    by_label = coded.probabilities(label[:, None].astype(float), seed)
    try:
        score = (
            roc_auc_score(coded.codes, probabilities[:, 1])
            if len(coded.names) == 2
            else roc_auc_score(
                coded.codes, probabilities, multi_class="ovr", labels=range(len(coded.names))
            )
        )
    except ValueError:
        score = None
    names = call_columns(column)
    calls = pd.DataFrame(
        {
            names["features"]: coded.calls(probabilities, len(rows)),
            names["label_only"]: coded.calls(by_label, len(rows)),
            names["within_class"]: np.full(len(rows), None, dtype=object),
        },
        index=rows.index,
    )
    within, undefined = {}, {}
    for value in (1, 0):
        of_class = label == value
        try:
            inner = Coded(rows[of_class], column)
            found = inner.probabilities(features[of_class], seed)
        except (UndefinedMetric, ValueError) as reason:
            undefined[CLASS_TITLES[value]] = str(reason)
            continue
        calls.loc[of_class, names["within_class"]] = inner.calls(found, int(of_class.sum()))
        within[CLASS_TITLES[value]] = ClassProbe(
            float((found.argmax(1) == inner.codes).mean()),
            inner.majority_rate,
            len(inner.names),
            len(inner.codes),
        )
    probe = GroupProbe(
        column=column,
        accuracy=float((probabilities.argmax(1) == coded.codes).mean()),
        majority_rate=coded.majority_rate,
        auroc=score,
        n_values=len(coded.names),
        n_folds=coded.n_folds,
        n=len(coded.codes),
        label_only_accuracy=float((by_label.argmax(1) == coded.codes).mean()),
        within_class=within,
        within_class_undefined=undefined,
        images_without_id=int(rows["patient_id"].isna().to_numpy()[coded.use].sum()),
    )
    return probe, calls
