"""Paired comparisons against references written from the papers' formulas, scikit-learn,
scipy's binomial test and brute-force bootstraps."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from deepcovid.metrics.bootstrap import Clusters
from deepcovid.metrics.discrimination import auroc
from deepcovid.metrics.paired import (
    auroc_test,
    clustered_mcnemar,
    compare_operating_points,
    delong_test,
    holm_adjust,
    mcnemar_exact,
    paired_bootstrap_auroc,
)
from deepcovid.metrics.undefined import UndefinedMetric


def two_models(n: int, seed: int, grid: int | None = None):
    """Labels and two correlated models' scores (rounded to ``grid`` steps: many ties)."""
    rng = np.random.default_rng(seed)
    label = np.concatenate([[0, 0, 1, 1], rng.integers(0, 2, n - 4)])
    shared = rng.normal(size=n)
    a = 1 / (1 + np.exp(-(1.2 * label + shared + 0.5 * rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(0.7 * label + shared + 0.8 * rng.normal(size=n))))
    if grid:
        a, b = np.round(a * grid) / grid, np.round(b * grid) / grid
    return label, a, b


def psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def delong_reference(label: np.ndarray, a: np.ndarray, b: np.ndarray):
    """DeLong et al. (1988) by their definitions: structural components V10 (per COVID image)
    and V01 (per non-COVID image) from the O(m·n) kernel, S = S10/m + S01/n."""
    components = []
    for score in (a, b):
        x, y = score[label == 1], score[label == 0]
        kernel = np.array([[psi(xi, yj) for yj in y] for xi in x])
        components.append((kernel.mean(axis=1), kernel.mean(axis=0), kernel.mean()))
    m, n = (label == 1).sum(), (label == 0).sum()
    s10 = np.cov(np.vstack([components[0][0], components[1][0]]))
    s01 = np.cov(np.vstack([components[0][1], components[1][1]]))
    s = s10 / m + s01 / n
    variance = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    difference = components[0][2] - components[1][2]
    return components[0][2], components[1][2], np.sqrt(variance), difference


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("grid", [None, 10])
def test_delong_matches_the_structural_components(seed: int, grid: int | None) -> None:
    label, a, b = two_models(60, seed, grid)
    result = delong_test(label, a, b)
    auc_a, auc_b, se, difference = delong_reference(label, a, b)
    assert (result.auroc_a, result.auroc_b) == pytest.approx((auc_a, auc_b), abs=1e-12)
    assert result.auroc_a == pytest.approx(roc_auc_score(label, a), abs=1e-12)
    assert result.auroc_b == pytest.approx(auroc(label, b), abs=1e-6)  # torchmetrics, float32
    assert result.se == pytest.approx(se, rel=1e-10)
    assert result.difference == pytest.approx(difference, abs=1e-12)
    z = difference / se
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert (result.low, result.high) == pytest.approx(
        (difference - 1.959963984540054 * se, difference + 1.959963984540054 * se)
    )
    assert (result.n_positive, result.n_negative) == ((label == 1).sum(), (label == 0).sum())


@pytest.mark.parametrize("seed", range(3))
def test_delong_se_matches_a_brute_force_bootstrap(seed: int) -> None:
    """Stratified bootstrap (COVID and non-COVID images resampled separately, as DeLong's
    variance assumes): its SD of the AUROC difference is the DeLong SE within 10 %."""
    label, a, b = two_models(80, seed, grid=20)
    rng = np.random.default_rng(100 + seed)
    kernels = []
    for score in (a, b):
        x, y = score[label == 1], score[label == 0]
        kernels.append((x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :]))
    m, n = kernels[0].shape
    differences = []
    for _ in range(4000):
        i, j = rng.integers(0, m, m), rng.integers(0, n, n)
        differences.append(kernels[0][np.ix_(i, j)].mean() - kernels[1][np.ix_(i, j)].mean())
    assert delong_test(label, a, b).se == pytest.approx(np.std(differences), rel=0.10)


def test_delong_undefined_cases() -> None:
    label, a, _ = two_models(30, 0)
    with pytest.raises(UndefinedMetric, match="zero DeLong variance"):
        delong_test(label, a, a)
    perfect = label.astype(float) * 0.5 + 0.25
    with pytest.raises(UndefinedMetric, match="zero DeLong variance"):
        delong_test(label, perfect, perfect * 0.9)
    with pytest.raises(UndefinedMetric, match="at least 2 images of each class"):
        delong_test(np.array([1, 0, 0]), np.array([0.9, 0.1, 0.2]), np.array([0.5, 0.4, 0.3]))
    with pytest.raises(UndefinedMetric, match="both classes"):
        delong_test(np.array([1, 1]), np.array([0.9, 0.1]), np.array([0.5, 0.4]))
    with pytest.raises(ValueError, match="2 scores"):
        delong_test(np.array([1, 0, 1]), np.array([0.9, 0.1, 0.2]), np.array([0.5, 0.4]))


def test_paired_bootstrap_uses_one_resample_of_patients_for_both_models() -> None:
    """Against a brute-force loop over the same seeded patient draws, scoring both models
    with scikit-learn; p-value as documented."""
    label, a, b = two_models(120, 1, grid=25)
    ids = np.repeat([f"p{i}" for i in range(40)], 3).astype(object)
    result = paired_bootstrap_auroc(label, a, b, ids, n_resamples=300, confidence=0.9, seed=5)
    rng, clusters, differences = np.random.default_rng(5), Clusters(ids, 120), []
    for _ in range(300):
        rows = clusters.draw(rng)
        if 0 < label[rows].sum() < len(rows):
            differences.append(
                roc_auc_score(label[rows], a[rows]) - roc_auc_score(label[rows], b[rows])
            )
    differences = np.array(differences)
    assert result.n_valid == len(differences) and result.unit == "patient"
    assert (result.low, result.high) == pytest.approx(tuple(np.percentile(differences, [5, 95])))
    side = min((differences <= 0).sum(), (differences >= 0).sum())
    assert result.p_value == pytest.approx(min(1.0, 2 * (1 + side) / (len(differences) + 1)))
    assert result.difference == pytest.approx(roc_auc_score(label, a) - roc_auc_score(label, b))


def test_patient_bootstrap_is_wider_than_delong_for_copied_images() -> None:
    """Each patient's image repeated 4 times: DeLong treats the copies as new evidence; the
    patient bootstrap matches DeLong on one image per patient instead."""
    label, a, b = two_models(100, 2)
    ids = np.repeat([f"p{i}" for i in range(100)], 4).astype(object)
    copies = np.repeat(label, 4), np.repeat(a, 4), np.repeat(b, 4)
    single = delong_test(label, a, b)
    naive = delong_test(*copies)
    by_patient = paired_bootstrap_auroc(*copies, ids, n_resamples=1500, seed=1)
    assert naive.se == pytest.approx(single.se / 2, rel=0.05)
    width = by_patient.high - by_patient.low
    assert width == pytest.approx(single.high - single.low, rel=0.2)
    assert width > 1.5 * (naive.high - naive.low)


def test_bootstrap_p_value_small_for_a_clear_difference_and_large_for_none() -> None:
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 200)
    strong = np.clip(0.6 * label + 0.4 * rng.random(200), 0, 1)
    noise = rng.random(200)
    clear = paired_bootstrap_auroc(label, strong, noise, n_resamples=500)
    assert clear.p_value == pytest.approx(2 / 501) and clear.low > 0
    # two independent noise models: no true difference
    same = paired_bootstrap_auroc(label, noise, rng.random(200), n_resamples=500)
    assert same.p_value > 0.05 and same.low < 0 < same.high


@pytest.mark.parametrize("seed", range(20))
def test_mcnemar_is_scipys_binomial_test_of_the_discordant_images(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    hit_a = rng.random(n) < rng.random()
    hit_b = np.where(rng.random(n) < 0.7, hit_a, rng.random(n) < 0.5)
    result = mcnemar_exact(hit_a, hit_b)
    only_a, only_b = int(np.sum(hit_a & ~hit_b)), int(np.sum(~hit_a & hit_b))
    expected = stats.binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
    assert result.p_value == pytest.approx(expected, rel=1e-12)
    assert (result.only_a, result.only_b) == (only_a, only_b)
    assert result.difference == pytest.approx(hit_a.mean() - hit_b.mean())


def test_operating_points_at_shared_and_own_thresholds() -> None:
    label = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    a = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4])
    b = np.array([0.9, 0.4, 0.3, 0.2, 0.2, 0.1, 0.1, 0.3])
    shared = compare_operating_points(label, a, b, 0.5)
    assert (shared.sensitivity.rate_a, shared.sensitivity.rate_b) == (0.75, 0.25)
    assert (shared.sensitivity.only_a, shared.sensitivity.only_b) == (2, 0)
    assert (shared.specificity.rate_a, shared.specificity.rate_b) == (0.75, 1.0)
    assert shared.sensitivity.p_value == pytest.approx(0.5)  # 2 · (1/2)²
    own = compare_operating_points(label, a, b, 0.5, 0.25)
    assert own.threshold_b == 0.25 and own.sensitivity.rate_b == 0.75
    assert own.sensitivity.p_value == 1.0  # no discordant COVID image
    assert (own.specificity.only_a, own.specificity.only_b) == (1, 1)  # 0.4 vs 0.3; 0.7 vs 0.2
    with pytest.raises(UndefinedMetric, match="both classes"):
        compare_operating_points(np.ones(3, int), a[:3], b[:3], 0.5)


def holm_by_definition(p: np.ndarray) -> np.ndarray:
    """The i-th smallest of m p-values → max over j ≤ i of min(1, (m − j + 1) · p_(j))."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_holm_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 12):
        p = rng.random(size) ** 3
        p[-1] = p[0]  # a tie
        assert holm_adjust(p) == pytest.approx(holm_by_definition(p), abs=1e-15)
    assert holm_adjust([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm_adjust([]).size == 0
    with pytest.raises(ValueError, match="p-values"):
        holm_adjust([0.2, float("nan")])


def clustered_equal_models(rng: np.random.Generator, n_patients: int = 40):
    """Two equally good models on ``n_patients`` patients of 1–8 images: each model has its
    own per-patient offset, so a patient's images move together in the difference."""
    sizes = rng.integers(1, 9, n_patients)
    patient = np.repeat(np.arange(n_patients), sizes)
    label = np.repeat(rng.integers(0, 2, n_patients), sizes)
    shared = np.repeat(rng.normal(size=n_patients), sizes)
    scores = [
        1 / (1 + np.exp(-(label + shared + np.repeat(rng.normal(size=n_patients), sizes)
                          + 0.3 * rng.normal(size=patient.size))))
        for _ in range(2)
    ]  # fmt: skip
    return label, scores[0], scores[1], patient.astype(str).astype(object)


def test_clustered_mcnemar_is_the_exact_test_with_one_image_per_patient() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.random(40) < 0.6, rng.random(40) < 0.5
        single = clustered_mcnemar(a, b, np.arange(40).astype(object))
        assert single.p_value == pytest.approx(mcnemar_exact(a, b).p_value)
        assert single.unit == "patient" and single.only_a == int(np.sum(a & ~b))


def test_clustered_mcnemar_sign_flip_distribution_by_enumeration() -> None:
    """Durkalski's d_k per patient: the p-value enumerated over all 2^K sign patterns."""
    a = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1], dtype=bool)
    b = np.array([0, 0, 0, 1, 1, 0, 0, 0, 1, 0], dtype=bool)
    ids = np.array(["p1", "p1", "p1", "p2", "p2", "p3", "p3", "p4", "p5", "p5"], dtype=object)
    d = np.array([3, -1, 1, 1, 1])  # p1: three only-a; p2: one only-b; p3, p4, p5: one only-a
    signs = np.array(np.meshgrid(*[[-1, 1]] * len(d))).reshape(len(d), -1).T
    expected = np.mean(np.abs(signs @ d) >= abs(d.sum()))
    assert clustered_mcnemar(a, b, ids).p_value == pytest.approx(expected)


def test_per_image_mcnemar_rejects_clustered_equal_models_far_above_alpha() -> None:
    """Sensitivity at 0.5 of two equal models, 300 simulated test sets: per-image McNemar
    rejects at α = 0.05 in ~30 % (anti-conservative), the clustered test near α (~2 %)."""
    rng = np.random.default_rng(1)
    per_image = clustered = 0
    for _ in range(300):
        label, a, b, ids = clustered_equal_models(rng)
        tests = compare_operating_points(label, a, b, 0.5, patient_id=ids).sensitivity
        clustered += tests.p_value < 0.05
        covid = label == 1
        per_image += mcnemar_exact(a[covid] >= 0.5, b[covid] >= 0.5).p_value < 0.05
    assert per_image / 300 > 0.15
    assert clustered / 300 < 0.08


@pytest.mark.slow
def test_headline_auroc_test_holds_alpha_with_clustered_equal_models() -> None:
    """120 simulated test sets (40 patients of 1–8 images, two equal models): per-image DeLong
    rejects at α = 0.05 in ~40 %, the headline test (patient bootstrap) in ~5 %."""
    rng = np.random.default_rng(1)
    n, delong, headline = 120, 0, 0
    for i in range(n):
        label, a, b, ids = clustered_equal_models(rng)
        delong += delong_test(label, a, b).p_value < 0.05
        found = auroc_test(label, a, b, ids, n_resamples=200, seed=i)
        assert found.method == "patient bootstrap"
        headline += found.p_value < 0.05
    assert delong / n > 0.25
    assert headline / n < 0.10


def test_headline_auroc_test_is_delong_without_patient_ids() -> None:
    label, a, b = two_models(60, 0)
    found = auroc_test(label, a, b, None)
    assert found.method == "DeLong (per image)"
    assert found.p_value == pytest.approx(delong_test(label, a, b).p_value)
