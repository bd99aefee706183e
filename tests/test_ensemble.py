"""Ensembles and test-time augmentation through predict() and evaluate(): P(COVID) is the mean
of the members' probabilities, recorded as such, and members that read their input differently
are refused."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepcovid.data.io import load_image
from deepcovid.data.transforms import EvalPreset
from deepcovid.evaluate import evaluate
from deepcovid.explain.explainers import GradCamExplainer, OcclusionExplainer
from deepcovid.metrics.threshold_selection import select_threshold
from deepcovid.models.checkpoints import load_classifier, read_record
from deepcovid.models.ensemble import EnsembleMismatchError, load_combined
from deepcovid.predict import predict
from deepcovid.utils.config import compose_config
from tests.conftest import best_checkpoint

EVAL_QUIET = [
    "trainer=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "logger=none",
    "print_config=false",
    "data.num_workers=0",
    "metrics.bootstrap_resamples=50",
]


def altered_copy(checkpoint: Path, out: Path, image_size: int | None = None) -> Path:
    """``checkpoint`` with its head's bias moved (another member), or its recorded input size
    changed."""
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if image_size is None:
        stored["state_dict"]["net.fc.bias"] += torch.tensor([-0.7, 0.7])
    else:
        stored["deepcovid"]["preprocessing"]["image_size"] = image_size
    torch.save(stored, out)
    return out


@pytest.fixture(scope="module")
def members(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    best = best_checkpoint(tiny_run)
    return [best, altered_copy(best, tmp_path_factory.mktemp("member") / "other.ckpt")]


def run_predict(ckpt: str, inputs: Path, out: Path, *extra: str) -> pd.DataFrame:
    overrides = [f"ckpt_path={ckpt}", f"inputs={inputs}", *extra]
    return pd.read_csv(predict(compose_config("predict", overrides, output_dir=str(out))))


def listed(paths: list[Path]) -> str:
    return "[" + ",".join(str(p) for p in paths) + "]"


@pytest.fixture(scope="module")
def single_predictions(members, covidx5k_shared, tmp_path_factory) -> list[pd.DataFrame]:
    out = tmp_path_factory.mktemp("single")
    return [
        run_predict(str(m), covidx5k_shared / "test", out / str(k)) for k, m in enumerate(members)
    ]


def flipped_prob_covid(checkpoint: Path, paths: list[str]) -> np.ndarray:
    """P(COVID) of each image flipped left-right, computed here without predict()."""
    classifier = load_classifier(checkpoint)
    transform = EvalPreset(classifier.record.preprocessing)
    images = torch.stack([transform(load_image(p)) for p in paths])
    with torch.inference_mode():
        return classifier.prob_covid(images.flip(-1)).numpy()


@pytest.fixture(scope="module")
def flipped(members, single_predictions) -> list[np.ndarray]:
    return [flipped_prob_covid(m, single_predictions[0]["path"].tolist()) for m in members]


def test_predict_ensemble_is_the_mean_of_its_members(
    members, single_predictions, covidx5k_shared, tmp_path
) -> None:
    first, second = single_predictions
    assert np.abs(first["prob_covid"] - second["prob_covid"]).min() > 0.01  # two models
    out = tmp_path / "ensemble"
    frame = run_predict(
        listed(members), covidx5k_shared / "test", out, "operating_point=target_sensitivity"
    )
    assert frame["path"].tolist() == first["path"].tolist()
    mean = (first["prob_covid"] + second["prob_covid"]) / 2
    np.testing.assert_allclose(frame["prob_covid"], mean, rtol=0, atol=1e-6)
    recorded = json.loads((out / "model.json").read_text())
    assert recorded["checkpoints"] == [str(m) for m in members]
    assert recorded["rule"] == "mean of the members' P(COVID)"
    assert recorded["tta"] == [] and recorded["views"] == ["identity"]
    assert "2 checkpoint(s)" in recorded["description"]
    assert recorded["operating_point"].endswith(
        "chosen on the mean of the 2 members' recorded val P(COVID) over the 9 val images they "
        "share"
    )
    assert (frame["predicted_label"] == (frame["prob_covid"] >= recorded["threshold"])).all()


def test_occlusion_of_an_ensemble_explains_the_mean_probability(members, covidx5k_shared):
    paths = sorted((covidx5k_shared / "test" / "covid").glob("*.png"))[:1]
    ensemble = load_combined([str(m) for m in members])
    images = torch.stack([EvalPreset(ensemble.record.preprocessing)(load_image(p)) for p in paths])
    explainer = OcclusionExplainer(window=16, stride=8, method="plain")
    each = [explainer(load_classifier(m), images) for m in members]
    torch.testing.assert_close(
        explainer(ensemble, images), (each[0] + each[1]) / 2, atol=1e-6, rtol=0
    )
    with pytest.raises(ValueError, match="use explainer=occlusion"):
        GradCamExplainer()(ensemble, images)


def test_hflip_tta_is_the_mean_of_the_plain_and_flipped_image(
    members, single_predictions, flipped, covidx5k_shared, tmp_path
) -> None:
    out = tmp_path / "tta"
    frame = run_predict(str(members[0]), covidx5k_shared / "test", out, "tta=[hflip]")
    plain = single_predictions[0]["prob_covid"].to_numpy()
    assert np.abs(flipped[0] - plain).max() > 1e-3  # the flip changes the score
    np.testing.assert_allclose(frame["prob_covid"], (plain + flipped[0]) / 2, rtol=0, atol=1e-6)
    recorded = json.loads((out / "model.json").read_text())
    assert recorded["tta"] == ["hflip"] and recorded["views"] == ["identity", "hflip"]


def test_members_with_another_input_are_refused(members, covidx5k_shared, tmp_path) -> None:
    other = altered_copy(members[0], tmp_path / "bigger.ckpt", image_size=48)
    with pytest.raises(EnsembleMismatchError) as refused:
        run_predict(listed([members[0], other]), covidx5k_shared / "test", tmp_path / "out")
    message = str(refused.value)
    assert str(members[0]) in message and str(other) in message
    assert "preprocessing.image_size (32 vs 48)" in message


def test_evaluate_ensemble_with_tta_scores_the_mean_and_chooses_thresholds_on_its_own_val(
    members, single_predictions, flipped, covidx5k_shared, tmp_path
) -> None:
    out = tmp_path / "eval"
    overrides = [
        f"ckpt_path={listed(members)}", "tta=[hflip]", f"data.root={covidx5k_shared}", *EVAL_QUIET
    ]  # fmt: skip
    evaluation = evaluate(compose_config("eval", overrides, str(out)))
    test = pd.read_csv(out / "predictions" / "test.csv").set_index("path")
    plain = [frame["prob_covid"].to_numpy() for frame in single_predictions]
    mean = pd.Series(
        (plain[0] + plain[1] + flipped[0] + flipped[1]) / 4, single_predictions[0]["path"]
    )
    np.testing.assert_allclose(test["prob_covid"], mean[test.index], rtol=0, atol=1e-6)
    recorded = json.loads((out / "metrics" / "test.json").read_text())
    assert recorded["model"]["ensemble"] == (
        "P(COVID) is the mean of the members' P(COVID) over 2 checkpoint(s) × 2 test-time "
        "view(s) (identity, hflip)"
    )
    assert recorded["model"]["checkpoint"] == ", ".join(str(m) for m in members)
    assert recorded["validation"]["source"].startswith("the ensemble's own val predictions")
    val = pd.read_csv(out / "predictions" / "val.csv").sort_values("path")
    chosen = next(p for p in evaluation.chosen_points if p.name == "target_sensitivity")
    labels, probs = val["label"].to_numpy(), val["prob_covid"].to_numpy()
    assert chosen.threshold == select_threshold(chosen.name, labels, probs, chosen.target)
    first_val = read_record(members[0]).val_predictions.sort_values("path")
    assert np.abs(probs - first_val["prob_covid"].to_numpy()).max() > 0.01  # not one member's
    assert "the mean of the members' P(COVID)" in (out / "report.md").read_text()
