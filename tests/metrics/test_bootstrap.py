"""Patient-level bootstrap: seeded, keeps a patient's images together, honest about failure."""

import numpy as np
import pytest

from deepcovid.metrics.bootstrap import Clusters, bootstrap_interval, mean_interval
from deepcovid.metrics.discrimination import auroc, average_precision
from deepcovid.metrics.undefined import UndefinedMetric


def data(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    return label, np.clip(0.35 * label + 0.65 * rng.random(n), 0, 1)


def test_seeded_and_reproducible() -> None:
    label, prob = data()
    first = bootstrap_interval(label, prob, auroc, n_resamples=200, seed=7)
    again = bootstrap_interval(label, prob, auroc, n_resamples=200, seed=7)
    other = bootstrap_interval(label, prob, auroc, n_resamples=200, seed=8)
    assert first == again and first != other
    assert first.low < auroc(label, prob) < first.high
    assert first.unit == "image" and first.n_valid == 200


def test_percentiles_of_the_resampled_statistic() -> None:
    label, prob = data(40)
    interval = bootstrap_interval(label, prob, auroc, n_resamples=300, confidence=0.9, seed=1)
    rng, clusters = np.random.default_rng(1), Clusters(None, len(label))
    values = []
    for _ in range(300):
        rows = clusters.draw(rng)
        if 0 < label[rows].sum() < len(rows):
            values.append(auroc(label[rows], prob[rows]))
    assert interval.n_valid == len(values)
    assert (interval.low, interval.high) == pytest.approx(tuple(np.percentile(values, [5, 95])))


def test_draws_whole_patients() -> None:
    patient = np.array(["a", "a", "a", "b", None, "c", "c"], dtype=object)
    clusters = Clusters(patient, len(patient))
    assert len(clusters) == 4  # a, b, c and the image without an id
    rng = np.random.default_rng(0)
    for _ in range(50):
        rows = clusters.draw(rng)
        drawn = list(patient[rows])
        assert drawn.count("a") % 3 == 0 and drawn.count("c") % 2 == 0


@pytest.mark.parametrize("statistic", [auroc, average_precision])
def test_patients_with_copies_resample_like_their_single_images(statistic) -> None:
    """k identical images per patient: the patient bootstrap equals the bootstrap of one image
    per patient, while resampling the images independently understates the spread."""
    label, prob = data(50)
    ids = np.array([f"p{i:03d}" for i in range(50)], dtype=object)
    copies = 4
    kw = {"n_resamples": 300, "seed": 3}
    single = bootstrap_interval(label, prob, statistic, ids, **kw)
    repeated = (np.repeat(label, copies), np.repeat(prob, copies), np.repeat(ids, copies))
    by_patient = bootstrap_interval(*repeated[:2], statistic, repeated[2], **kw)
    by_image = bootstrap_interval(*repeated[:2], statistic, None, **kw)
    assert (by_patient.low, by_patient.high) == pytest.approx((single.low, single.high))
    assert by_patient.unit == "patient" and by_image.unit == "image"
    assert by_image.high - by_image.low < 0.75 * (by_patient.high - by_patient.low)


def test_undefined_cases() -> None:
    with pytest.raises(UndefinedMetric, match="both classes"):  # the statistic itself
        bootstrap_interval(np.array([1]), np.array([0.3]), auroc, n_resamples=10)
    with pytest.raises(UndefinedMetric, match="two patients"):
        bootstrap_interval(np.array([0, 1]), np.array([0.3, 0.6]), auroc, ["p", "p"], 10)
    # one COVID image in 30: most resamples lack it, so no honest interval exists
    label, prob = np.array([1] + [0] * 29), np.linspace(0, 1, 30)
    with pytest.raises(UndefinedMetric, match="resamples contain both classes"):
        bootstrap_interval(label, prob, auroc, n_resamples=100)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_interval(label, prob, auroc, n_resamples=0)


def test_perfect_separation_gives_a_degenerate_interval_not_a_crash() -> None:
    label = np.array([0] * 10 + [1] * 10)
    prob = np.concatenate([np.linspace(0, 0.4, 10), np.linspace(0.6, 1, 10)])
    interval = bootstrap_interval(label, prob, auroc, n_resamples=100)
    assert interval.low == pytest.approx(1.0) and interval.high == pytest.approx(1.0)


def test_mean_interval_is_the_percentile_interval_of_resampled_patient_means() -> None:
    values = np.array([0.9, 0.8, 0.85, 0.2, 0.4, 0.7, 0.1])
    ids = np.array(["a", "a", "a", "b", None, "c", "c"], dtype=object)
    drawn = mean_interval(values, ids, n_resamples=200, confidence=0.9, seed=3)
    rng, clusters = np.random.default_rng(3), Clusters(ids, len(values))
    means = [values[clusters.draw(rng)].mean() for _ in range(200)]
    assert (drawn.low, drawn.high) == tuple(np.percentile(means, [5.0, 95.0]))
    assert drawn.unit == "patient" and drawn.n_valid == 200
