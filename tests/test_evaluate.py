"""evaluate(): the training run's splits rebuilt and verified, or another site's data with frozen
or site-recalibrated operating points; float32 scores whatever the trainer's precision; and, on
the real cxr-dev radiographs, metrics that agree with a recomputation from the CSVs."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from deepcovid.data.recorded import DataMismatchError
from deepcovid.evaluate import evaluate
from deepcovid.metrics.predictions import read_predictions
from deepcovid.models.checkpoints import read_record
from deepcovid.results.table1 import read_table_one
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.callbacks.test_evaluation import FILES
from tests.conftest import (
    CXR_DEV,
    best_checkpoint,
    make_covidx5k,
    requires_real_data,
    tiny_overrides,
)
from tests.results.test_failures import brute_force

QUIET = [
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
    "print_config=false",
    "data.num_workers=0",
    "metrics.bootstrap_resamples=50",
    "failures.count=0",  # the failure-case figure only where a test checks it
]


def run_eval(ckpt: Path, root: Path, out: Path, *extra: str):
    overrides = [f"ckpt_path={ckpt}", f"data.root={root}", *QUIET, *extra]
    return evaluate(compose_config("eval", overrides, str(out)))


@pytest.fixture(scope="module")
def unsplit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Class folders without a test folder (test and val carved), trained with seed=7."""
    root = tmp_path_factory.mktemp("unsplit") / "data"
    make_covidx5k(root, {"covid": 40, "non": 60})
    out = root.parent / "run"
    train(compose_config("train", tiny_overrides(root, out, "seed=7", "test=false"), str(out)))
    return root, out / "checkpoints" / "last.ckpt"


def test_evaluate_rebuilds_the_training_splits_whatever_its_own_seed(unsplit, tmp_path):
    root, ckpt = unsplit
    record = read_record(ckpt)
    evaluation = run_eval(ckpt, root, tmp_path, "seed=42", "data.seed=42")  # not training's 7
    tested = pd.read_csv(tmp_path / "predictions" / "test.csv")
    assert (
        sorted(str(Path(p).relative_to(root)) for p in tested["path"])
        == record.data.members["test"]
    )
    val = pd.read_csv(tmp_path / "predictions" / "val.csv")
    assert sorted(str(Path(p).relative_to(root)) for p in val["path"]) == record.data.members["val"]
    assert evaluation.mode == "the training data" and evaluation.counts.n == len(tested)
    assert evaluation.model.seed == 7


def test_other_data_given_as_the_same_is_refused_naming_the_difference(unsplit, tmp_path):
    root, ckpt = unsplit
    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    (copy / "covid" / "img000.png").unlink()
    with pytest.raises(DataMismatchError) as error:
        run_eval(ckpt, copy, tmp_path / "out")
    message = str(error.value)
    assert "the files differ: 99 images now, 100 in training" in message
    assert "external=true" in message
    with pytest.raises(ValueError, match="data.image_size=48, but .* image_size=32"):
        run_eval(ckpt, root, tmp_path / "out", "data.image_size=48")
    with pytest.raises(ValueError, match="data.outside_lungs=blank, but .* outside_lungs=keep"):
        run_eval(ckpt, root, tmp_path / "out", "data.outside_lungs=blank")


def test_another_site_with_frozen_operating_points(tiny_run: Path, tmp_path: Path) -> None:
    site = make_covidx5k(tmp_path / "site", {"covid": 7, "non": 9})  # no splits at all
    ckpt = best_checkpoint(tiny_run)
    failures = ["explainer=occlusion", "failures.count=3", "failures.operating_point=default"]
    evaluation = run_eval(ckpt, site, tmp_path / "out", "external=true", *failures)
    assert evaluation.counts.n == 16 and evaluation.mode.startswith("external data, frozen")
    trained = json.loads((tiny_run / "metrics" / "test.json").read_text())["chosen_points"]
    assert [p.threshold for p in evaluation.chosen_points] == [p["threshold"] for p in trained]
    assert {p.chosen_on for p in evaluation.chosen_points} == {"training val"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "of external data, frozen operating points" in report
    assert "the training run's val split (thresholds frozen, applied to this site)" in report
    cases = pd.read_csv(tmp_path / "out" / "failures" / "failure_cases.csv")  # evaluate's too
    predictions = read_predictions(tmp_path / "out" / "predictions" / "test.csv")
    assert set(cases["threshold"]) == {evaluation.threshold}
    expected = brute_force(predictions, evaluation.threshold, 3)
    assert expected and list(zip(cases["kind"], cases["path"], strict=True)) == expected
    assert "occlusion heatmaps" in report  # the configured explainer


def test_another_site_recalibrated_on_its_own_val_split(tiny_run: Path, tmp_path: Path):
    site = make_covidx5k(tmp_path / "site", {"covid": 12, "non": 12})
    overrides = ["external=true", "operating_points=site_recalibrated", "data.val_fraction=0.25"]
    evaluation = run_eval(best_checkpoint(tiny_run), site, tmp_path / "out", *overrides)
    val = pd.read_csv(tmp_path / "out" / "predictions" / "val.csv")
    tested = pd.read_csv(tmp_path / "out" / "predictions" / "test.csv")
    assert len(val) + len(tested) == 24 and not set(val["path"]) & set(tested["path"])
    assert evaluation.validation.source == "this site's val split (site recalibration)"
    assert {p.chosen_on for p in evaluation.chosen_points} == {"site val"}
    assert "site-recalibrated operating points" in (tmp_path / "out" / "report.md").read_text()


def test_a_test_only_manifest_can_be_evaluated(tiny_run: Path, covidx5k_shared: Path, tmp_path):
    images = sorted((covidx5k_shared / "test").rglob("*.*"))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(
        {
            "path": [str(p) for p in images],
            "label": ["covid" if "/covid/" in str(p) else "non-covid" for p in images],
            "split": "test",
        }
    ).to_csv(manifest, index=False)
    evaluation = run_eval(
        best_checkpoint(tiny_run), tmp_path, tmp_path / "out", "external=true",
        f"data.manifest={manifest}",
    )  # fmt: skip
    assert evaluation.counts.n == 14
    first = pd.read_csv(tiny_run / "predictions" / "test.csv").sort_values("path")
    again = pd.read_csv(tmp_path / "out" / "predictions" / "test.csv").sort_values("path")
    np.testing.assert_array_equal(again["prob_covid"], first["prob_covid"])  # the same model


def test_scores_are_float32_under_a_bf16_trainer(tiny_run: Path, covidx5k_shared: Path, tmp_path):
    ckpt = best_checkpoint(tiny_run)
    bf16 = ["trainer.precision=bf16-mixed"]
    full = run_eval(ckpt, covidx5k_shared, tmp_path / "full", *bf16)
    mixed = run_eval(ckpt, covidx5k_shared, tmp_path / "mixed", *bf16, "full_precision_eval=false")
    exact = pd.read_csv(tiny_run / "predictions" / "test.csv")
    in_full = pd.read_csv(tmp_path / "full" / "predictions" / "test.csv")
    in_mixed = pd.read_csv(tmp_path / "mixed" / "predictions" / "test.csv")
    np.testing.assert_array_equal(in_full["prob_covid"], exact["prob_covid"])
    assert not np.array_equal(in_mixed["prob_covid"], exact["prob_covid"])
    assert full.precision == "32-true" and mixed.precision == "bf16-mixed"
    assert "its network run in 32-true precision" in (tmp_path / "full" / "report.md").read_text()


def test_an_external_val_split_is_refused(tmp_path: Path) -> None:
    """(A wrong split or operating_points stops at composition: tests/utils/test_choices.py.)"""
    cfg = compose_config("eval", ["ckpt_path=x.ckpt", "external=true", "split=val"], str(tmp_path))
    with pytest.raises(ValueError, match="external=true evaluates the test split"):
        evaluate(cfg)


# ---- on the real radiographs -------------------------------------------------------------
REAL = [f"data.root={CXR_DEV}", "data.num_workers=0"]


@pytest.fixture(scope="module")
def cxr_run(cxr_dev_run: Path) -> Path:
    """The shared 1-epoch resnet18 run on cxr-dev at 48 px (tests/conftest.py)."""
    return cxr_dev_run


@pytest.fixture(scope="module")
def cxr_eval(cxr_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cxr_eval")
    (checkpoint,) = (cxr_run / "checkpoints").glob("best-epoch*.ckpt")
    evaluate(compose_config("eval", [f"ckpt_path={checkpoint}", *REAL, *QUIET], str(out)))
    return out


@requires_real_data
@pytest.mark.realdata
def test_real_data_every_file_and_patient_aware_intervals(cxr_eval: Path) -> None:
    for name in FILES:
        assert (cxr_eval / name).is_file(), name
    predictions = pd.read_csv(cxr_eval / "predictions" / "test.csv")
    assert {"path", "label", "prob_covid", "patient_id", "source", "finding"} <= set(predictions)
    assert predictions["path"].str.contains("/test/").all()
    metrics = json.loads((cxr_eval / "metrics" / "test.json").read_text())
    assert metrics["bootstrap"]["unit"] == "patient"
    assert {p["interval"] for p in metrics["fixed_points"]} == {"deff_wilson"}
    assert "patient-aware Wilson" in (cxr_eval / "report.md").read_text()


@requires_real_data
@pytest.mark.realdata
def test_real_data_metrics_agree_with_a_recomputation_from_the_csv(cxr_eval: Path) -> None:
    metrics = json.loads((cxr_eval / "metrics" / "test.json").read_text())
    test = pd.read_csv(cxr_eval / "predictions" / "test.csv")
    label, prob = test["label"].to_numpy(), test["prob_covid"].to_numpy()
    counts = metrics["counts"]
    assert (counts["n_positive"], counts["n_negative"]) == (label.sum(), (label == 0).sum())
    assert metrics["auroc"] == pytest.approx(roc_auc_score(label, prob), abs=1e-6)
    assert metrics["average_precision"] == pytest.approx(
        average_precision_score(label, prob), abs=1e-6
    )
    low, high = metrics["auroc_ci"]
    assert low <= metrics["auroc"] <= high
    assert counts["n_patients"] == test["patient_id"].nunique() == 75
    for point in metrics["fixed_points"] + metrics["chosen_points"]:
        if point["threshold"] is None:  # e.g. no val threshold reaches the target: say why
            assert point["undefined"], point
            continue
        called = prob >= point["threshold"]
        tp, fn = int((called & (label == 1)).sum()), int((~called & (label == 1)).sum())
        tn, fp = int((~called & (label == 0)).sum()), int((called & (label == 0)).sum())
        c = point["counts"]
        assert (c["tp"], c["fn"], c["tn"], c["fp"]) == (tp, fn, tn, fp)
        assert point["sensitivity"] == pytest.approx(tp / (tp + fn))
    val = pd.read_csv(cxr_eval / "predictions" / "val.csv")
    val_label, val_prob = val["label"].to_numpy(), val["prob_covid"].to_numpy()
    chosen = next(p for p in metrics["chosen_points"] if p["name"] == "target_sensitivity")
    reaching = [t for t in np.unique(val_prob) if (val_prob[val_label == 1] >= t).mean() >= 0.98]
    assert chosen["threshold"] == max(reaching)
    # cxr-dev's manifest carries source, finding and view (PA/AP): each gets its table
    assert set(metrics["subgroups"]) == {"source", "finding", "view"}
    views = pd.read_csv(cxr_eval / "predictions" / "test.csv")["view"]
    by_view = {s["value"]: s["counts"]["n"] for s in metrics["subgroups"]["view"]}
    assert by_view == views.value_counts().to_dict()


@requires_real_data
@pytest.mark.realdata
def test_real_data_train_final_test_wrote_the_same_evaluation(cxr_run: Path, cxr_eval: Path):
    for split in ("test", "val"):
        by_train = pd.read_csv(cxr_run / "predictions" / f"{split}.csv")
        by_evaluate = pd.read_csv(cxr_eval / "predictions" / f"{split}.csv")
        assert list(by_train["path"]) == list(by_evaluate["path"])
        np.testing.assert_array_equal(by_train["prob_covid"], by_evaluate["prob_covid"])
    first = json.loads((cxr_run / "metrics" / "test.json").read_text())
    second = json.loads((cxr_eval / "metrics" / "test.json").read_text())
    for key in ("auroc", "chosen_points", "fixed_points", "calibration"):
        assert first[key] == second[key]


@requires_real_data
@pytest.mark.realdata
def test_real_data_table_one_and_checklist_from_the_manifest(cxr_eval: Path) -> None:
    table = read_table_one(cxr_eval / "table1.csv")
    test = pd.read_csv(cxr_eval / "predictions" / "test.csv")
    rows = table[table["partition"] == "test"].set_index(["characteristic", "level"])["count"]
    assert rows[("images", "")] == len(test)
    assert rows[("patients", "")] == test["patient_id"].nunique()
    for column in ("view", "source"):  # cxr-dev's manifest carries both
        counts = {level: n for (c, level), n in rows.items() if c == column and n}
        assert counts == test[column].value_counts().to_dict()
    checklist = (cxr_eval / "checklist.md").read_text()
    licences = set(pd.read_csv(CXR_DEV / "manifest.csv")["license"])
    assert "Licences as the manifest gives them:" in checklist
    assert all(licence in checklist for licence in licences)
    n_patients = int(
        table[table["partition"] == "all"].set_index("characteristic").loc["patients", "count"]
    )
    assert f"By patient ({n_patients} patients): 0 patients sit in several splits." in checklist
