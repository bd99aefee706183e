"""Which images a heatmap panel shows: a fixed seeded sample plus the most telling mistakes.

The fixed part stays the same from epoch to epoch (so maps can be compared over training); the
rest is chosen from the epoch's predictions: the most confident true positives, false
negatives (lowest P(COVID) among COVID images) and false positives.
"""

from __future__ import annotations

import numpy as np

from deepcovid.metrics.predictions import Predictions


def balanced_sample(items: np.ndarray, labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Up to ``count`` of ``items`` drawn with ``seed``, half from each class where possible
    (COVID first), sorted."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label, share in ((1, count - count // 2), (0, count // 2)):
        pool = np.asarray(items)[np.asarray(labels) == label]
        chosen += rng.choice(pool, size=min(share, len(pool)), replace=False).tolist()
    return np.sort(np.asarray(chosen, dtype=int))


def fixed_sample(predictions: Predictions, count: int, seed: int) -> np.ndarray:
    """``count`` sample indices drawn with ``seed``, half from each class where possible."""
    return balanced_sample(predictions.index, predictions.label, count, seed)


def confident_cases(
    predictions: Predictions, threshold: float, per_category: int
) -> dict[str, np.ndarray]:
    """Up to ``per_category`` sample indices per category, most confident first (ties by
    index)."""
    positive, covid = predictions.prob_covid >= threshold, predictions.label == 1
    cases = {}
    for category, selected, sign in (
        ("true_positive", positive & covid, -1.0),
        ("false_negative", ~positive & covid, 1.0),
        ("false_positive", positive & ~covid, -1.0),
    ):
        index, prob = predictions.index[selected], predictions.prob_covid[selected]
        cases[category] = index[np.lexsort((index, sign * prob))][:per_category]
    return cases


def select_panel(
    predictions: Predictions, threshold: float, per_category: int, fixed: np.ndarray
) -> list[tuple[int, str]]:
    """(sample index, category) pairs: ``fixed`` ("sample") then the confident cases, each
    image once."""
    known = set(predictions.index.tolist())
    panel = [(int(i), "sample") for i in fixed if i in known]
    shown = {index for index, _ in panel}
    for category, indices in confident_cases(predictions, threshold, per_category).items():
        for index in indices.tolist():
            if index not in shown:
                panel.append((index, category))
                shown.add(index)
    return panel
