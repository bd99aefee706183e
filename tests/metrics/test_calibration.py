"""ECE (torchmetrics) against the reliability bins and a NumPy reference."""

import numpy as np
import pytest

from deepcovid.metrics.calibration import expected_calibration_error, reliability_bins
from deepcovid.metrics.undefined import UndefinedMetric


def numpy_ece(label: np.ndarray, prob: np.ndarray, n_bins: int) -> float:
    which = np.minimum((prob * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(label[members].mean() - prob[members].mean())
    return total


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_ece_matches_bins_and_reference(seed: int, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    prob = rng.random(300)
    prob[:10] = 1.0  # scores of exactly 1.0 fall in the last bin
    prob[10:20] = 0.0
    label = (rng.random(300) < prob**2).astype(int)
    ece = expected_calibration_error(label, prob, n_bins)
    bins = reliability_bins(label, prob, n_bins)
    assert bins.count.sum() == 300
    weights = bins.count / bins.count.sum()
    from_bins = np.nansum(weights * np.abs(bins.fraction_covid - bins.mean_prob_covid))
    assert ece == pytest.approx(from_bins, abs=1e-6)
    assert ece == pytest.approx(numpy_ece(label, np.minimum(prob, 1 - 1e-12), n_bins), abs=1e-6)


def test_perfectly_calibrated_and_empty_bins() -> None:
    label = np.array([0, 1] * 50)
    prob = np.full(100, 0.5)
    assert expected_calibration_error(label, prob) == pytest.approx(0.0)
    bins = reliability_bins(label, prob, 10)
    assert bins.count[5] == 100 and bins.count.sum() == 100
    assert np.isnan(bins.mean_prob_covid[0]) and bins.fraction_covid[5] == 0.5


def test_single_image_and_bad_bins() -> None:
    assert expected_calibration_error(np.array([1]), np.array([0.75])) == pytest.approx(0.25)
    with pytest.raises(UndefinedMetric, match="at least one image"):
        expected_calibration_error(np.array([], dtype=int), np.array([]))
    with pytest.raises(ValueError, match="calibration_bins"):
        reliability_bins(np.array([1]), np.array([0.5]), 0)
