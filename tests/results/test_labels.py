"""Labels that say what a number is (issue 20 items 9 and 10): exact ECE bin edges, patients
counted with their missing ids, the decision curve's prevalence, and few patients warned about
with the interval that was used."""

import numpy as np
import pandas as pd

from deepcovid.metrics.calibration import expected_calibration_error, reliability_bins
from deepcovid.metrics.intervals import few_patients
from deepcovid.metrics.summary import MetricSettings, ModelInfo, summarize
from deepcovid.results.markdown import results_section


def frame(n: int, seed: int = 0, ids=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 2
    prob = np.clip(0.3 * label + 0.7 * rng.random(n), 0, 1)
    table = pd.DataFrame({"path": [f"{i}.png" for i in range(n)], "label": label,
                          "prob_covid": prob})  # fmt: skip
    if ids is not None:
        table["patient_id"] = ids
    return table


def test_ece_bins_have_exact_edges() -> None:
    """Before: 0.3 fell in [0.2, 0.3) (float linspace edge 0.30000000000000004)."""
    bins = reliability_bins(np.array([1, 0, 0]), np.array([0.3, 0.7, 1.0]), 10)
    assert bins.count[3] == 1 and bins.count[2] == 0 and bins.count[9] == 1
    assert bins.lower[3] == 0.3 and bins.mean_prob_covid[3] == 0.3
    assert expected_calibration_error(np.array([1, 0]), np.array([0.3, 0.3]), 10) == 0.2


def test_partly_missing_patient_ids_are_counted_as_such() -> None:
    ids = [f"p{i // 2}" if i < 40 else None for i in range(60)]  # 20 patients, 20 images bare
    evaluation = summarize(frame(60, ids=ids), None, MetricSettings(bootstrap_resamples=20),
                           0.5, ModelInfo("resnet18"))  # fmt: skip
    assert (evaluation.counts.n_patients, evaluation.counts.n_without_id) == (20, 20)
    assert "20 identified patients, 20 images without a patient id" in results_section(evaluation)


def test_the_decision_curve_sentence_names_the_prevalence_it_is_drawn_at() -> None:
    settings = MetricSettings(bootstrap_resamples=20, prevalence=0.1)
    evaluation = summarize(frame(60), None, settings, 0.5, ModelInfo("resnet18"))
    text = results_section(evaluation)
    assert "At a COVID prevalence of 10.0 %" in text
    assert "at this split's own prevalence of 50.0 % (its counts), not at the 10.0 %" in text


def test_few_patients_switch_auto_to_the_patient_bootstrap_and_say_so() -> None:
    """15 patients, one holding 30 of the 58 images: before, deff_wilson without a word."""
    ids = np.repeat([f"p{k}" for k in range(15)], [30] + [2] * 14).astype(object)
    rng = np.random.default_rng(0)
    label = np.repeat(rng.integers(0, 2, 15), [30] + [2] * 14)
    label[:2] = [0, 1]
    table = frame(58, ids=ids).assign(label=label)
    evaluation = summarize(table, None, MetricSettings(bootstrap_resamples=20), 0.5,
                           ModelInfo("resnet18"))  # fmt: skip
    assert {p.interval for p in evaluation.fixed_points} == {"patient_bootstrap"}
    (note,) = [n for n in evaluation.notes if "cluster in few patients" in n]
    assert "15 patients (fewer than 20)" in note and "patient bootstrap intervals" in note
    assert "patient bootstrap intervals for sensitivity" in results_section(evaluation)


def test_one_dominant_patient_among_many_is_named() -> None:
    ids = np.array([f"p{k}" for k in range(30)] + ["big"] * 10, dtype=object)
    label = np.array([0, 1] * 15 + [1] * 10)
    assert few_patients(label, ids) == (
        "one patient holds 10 of the 25 COVID images (more than 20 %)"
    )
    assert few_patients(label, None) is None
