"""Export → load round trips: the export carries the checkpoint's record and predicts what the
checkpoint predicts, without Lightning or pickle."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from deepcovid.data.io import load_image
from deepcovid.data.transforms import EvalPreset
from deepcovid.export import export
from deepcovid.models.checkpoints import load_classifier, read_record
from deepcovid.models.exported import load_exported, metadata_path, read_metadata
from deepcovid.predict import predict
from deepcovid.results.model_card import card_metadata
from deepcovid.utils.config import compose_config
from tests.conftest import best_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tiny_run: Path) -> Path:
    return best_checkpoint(tiny_run)


def images(root: Path, count: int = 4) -> list[Path]:
    return sorted((root / "test").rglob("*.*"))[:count]


def test_safetensors_export_matches_the_checkpoint(
    checkpoint: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    cfg = compose_config("export", [f"ckpt_path={checkpoint}", f"output_dir={tmp_path}"])
    weights = export(cfg.ckpt_path, cfg.format, cfg.output_dir, cfg.name)
    assert weights == tmp_path / "model.safetensors"
    meta = json.loads((tmp_path / "model.safetensors.json").read_text())
    model = meta["model"]
    assert model["backbone"] == "resnet18" and model["class_names"] == ["non-covid", "covid"]
    assert model["threshold"] == 0.2 and model["target_layer"] == "layer4"
    record = read_record(checkpoint)
    assert model["operating_points"] == record.operating_points  # its thresholds travel too
    assert model["data"]["fingerprint"] == record.data.fingerprint
    assert model["data"]["members"] == {} and model["val_predictions"] is None  # no image list
    prep = model["preprocessing"]
    assert (prep["image_size"], prep["crop_ratio"], prep["channels"]) == (32, 0.875, 3)
    assert prep["mean"] == pytest.approx([0.485, 0.456, 0.406])

    exported = load_exported(weights)
    original = load_classifier(checkpoint)
    paths = images(covidx5k_shared)
    batch = torch.stack([exported.eval_transform(load_image(p)) for p in paths])
    reference = torch.stack([EvalPreset(record.preprocessing)(load_image(p)) for p in paths])
    assert torch.equal(batch, reference)
    with torch.no_grad():
        assert torch.equal(exported.prob_covid(batch), original.prob_covid(batch))
    assert exported.record.threshold == 0.2 and not exported.training


def test_safetensors_file_alone_predicts_what_the_checkpoint_predicts(
    checkpoint: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    """The record travels in the safetensors header: with its JSON deleted, the file alone
    loads the same record and gives the checkpoint's P(COVID) on image files."""
    weights = export(checkpoint, "safetensors", tmp_path, card=False)
    with_json = read_metadata(weights)
    metadata_path(weights).unlink()
    alone = load_exported(weights)
    assert read_metadata(weights) == {k: v for k, v in with_json.items() if k != "sha256"}
    assert alone.record.to_metadata() == read_record(checkpoint).to_metadata()
    original = load_classifier(checkpoint)
    paths = images(covidx5k_shared, 14)
    batch = torch.stack([alone.eval_transform(load_image(p)) for p in paths])
    with torch.no_grad():
        assert torch.equal(alone.prob_covid(batch), original.prob_covid(batch))


def test_model_card_metrics_are_those_of_metrics_test_json(
    tiny_run: Path, checkpoint: Path, tmp_path: Path
) -> None:
    """README.md's YAML parses, and each model-index metric and interval is the number in
    the run's metrics/test.json (read here as plain JSON)."""
    cfg = compose_config("export", [f"ckpt_path={checkpoint}", f"output_dir={tmp_path}"])
    export(cfg.ckpt_path, cfg.format, cfg.output_dir, cfg.name, card=cfg.card.enabled)
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("---\n")
    matter = yaml.safe_load(text.split("---\n")[1])
    assert matter["license"] == "other" and "covid-19" in matter["tags"]
    assert matter["datasets"] == ["covidx5k"]  # no source column: the data folder's name
    (index,) = matter["model-index"]
    (result,) = index["results"]
    assert result["dataset"]["split"] == "test"
    stored = json.loads((tiny_run / "metrics" / "test.json").read_text())
    by_name = {m["name"]: m for m in result["metrics"]}
    assert by_name["AUROC"]["value"] == stored["auroc"]
    assert by_name["AUROC"]["args"]["interval"] == stored["auroc_ci"]
    assert by_name["Average precision"]["value"] == stored["average_precision"]
    assert by_name["Brier score"]["value"] == stored["calibration"]["brier"]["value"]
    assert by_name["Expected calibration error"]["value"] == stored["calibration"]["ece"]
    default = next(p for p in stored["fixed_points"] if p["threshold"] == stored["threshold"])
    chosen = [p for p in stored["chosen_points"] if p["threshold"] is not None]
    points = [default | {"name": "fixed"}, *chosen]
    for point in points:
        for kind in ("sensitivity", "specificity"):
            entry = by_name[f"{kind.capitalize()} ({point['name']})"]
            assert entry["value"] == point[kind]
            assert entry["args"]["interval"] == point[f"{kind}_ci"]
            assert f"threshold={point['threshold']}" in entry["config"]
    assert len(result["metrics"]) == 4 + 2 * len(points)
    for heading in ("Intended use", "Out-of-scope use", "Training data", "Evaluation",
                    "Calibration", "Shortcut audit", "Limitations", "How to run it"):  # fmt: skip
        assert f"\n## {heading}\n" in text
    assert "not evaluated" not in text.lower() and "Not audited" in text


def test_model_card_says_not_evaluated_rather_than_borrowing_numbers(
    tiny_run: Path, tmp_path: Path
) -> None:
    """last.ckpt's run evaluated the best checkpoint: its numbers are not last.ckpt's; a
    checkpoint copied alone has no run files at all."""
    export(tiny_run / "checkpoints" / "last.ckpt", "safetensors", tmp_path / "last")
    text = (tmp_path / "last" / "README.md").read_text()
    assert "model-index" not in card_metadata(text)
    assert "Not evaluated: " in text and "best-epoch" in text and "not these weights" in text
    alone = tmp_path / "alone" / "model.ckpt"
    alone.parent.mkdir()
    shutil.copy(best_checkpoint(tiny_run), alone)
    export(alone, "safetensors", tmp_path / "alone")
    text = (tmp_path / "alone" / "README.md").read_text()
    assert "metrics/test.json is absent" in text and "data_check.json` is absent" in text


def test_model_card_from_another_evaluation_folder(tiny_run: Path, tmp_path: Path) -> None:
    """card.evaluation_dir: metrics and the tested sources from that folder, the training
    data's table from the checkpoint's own run (not the evaluated site's)."""
    other = tmp_path / "site-eval"
    (other / "metrics").mkdir(parents=True)
    shutil.copy(tiny_run / "metrics" / "test.json", other / "metrics" / "test.json")
    site = [{"split": "test", "class": "covid", "source": "Site B", "images": 3}]
    (other / "data_check.json").write_text(json.dumps({"counts": site}))
    cfg = compose_config(
        "export",
        [f"ckpt_path={best_checkpoint(tiny_run)}", f"output_dir={tmp_path / 'x'}",
         f"card.evaluation_dir={other}"],
    )  # fmt: skip
    export(cfg.ckpt_path, output_dir=cfg.output_dir, evaluation_dir=cfg.card.evaluation_dir)
    text = (tmp_path / "x" / "README.md").read_text()
    (index,) = card_metadata(text)["model-index"]
    assert index["results"][0]["dataset"]["name"] == "Site B"
    assert card_metadata(text)["datasets"] == ["covidx5k"]
    assert f"From `{other / 'metrics' / 'test.json'}`" in text
    assert "| train | non-covid | - | 18 |" in text and "Site B |" not in text


def test_a_foreign_readme_is_refused_without_overwrite(checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# my notes\n")
    with pytest.raises(FileExistsError, match=r"README\.md.*overwrite=true"):
        export(checkpoint, "safetensors", tmp_path)
    assert (tmp_path / "README.md").read_text() == "# my notes\n"
    assert not (tmp_path / "model.safetensors").exists()  # refused before writing anything
    export(checkpoint, "safetensors", tmp_path, overwrite=True)
    assert card_metadata((tmp_path / "README.md").read_text())["license"] == "other"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_onnx_and_torchscript_exports_compute_the_same_logits(
    checkpoint: Path, tmp_path: Path, fmt: str
) -> None:
    weights = export(checkpoint, fmt, tmp_path)
    meta = json.loads(metadata_path(weights).read_text())
    assert meta["format"] == fmt and meta["weights"] == weights.name
    batch = torch.randn(3, 3, 32, 32)  # another batch size than the export's example
    with torch.no_grad():
        expected = load_classifier(checkpoint)(batch).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(weights))
        logits = session.run(["logits"], {"image": batch.numpy()})[0]
    else:
        with torch.no_grad():
            logits = torch.jit.load(str(weights))(batch).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_two_formats_in_one_folder_both_load(checkpoint: Path, tmp_path: Path) -> None:
    """safetensors then torchscript into one folder: each keeps its own sidecar and loads."""
    safetensors = export(checkpoint, "safetensors", tmp_path)
    torchscript = export(checkpoint, "torchscript", tmp_path)
    batch = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        from_safetensors = load_exported(safetensors)(batch)
        assert read_metadata(torchscript)["format"] == "torchscript"
        from_torchscript = torch.jit.load(str(torchscript))(batch)
    torch.testing.assert_close(from_safetensors, from_torchscript, atol=1e-4, rtol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README.md", "model.pt", "model.pt.json", "model.safetensors", "model.safetensors.json"
    ]  # fmt: skip
    assert "`model.safetensors`, `model.pt`" in (tmp_path / "README.md").read_text()  # one card


def test_an_existing_export_is_kept_without_overwrite(checkpoint: Path, tmp_path: Path) -> None:
    weights = export(checkpoint, "safetensors", tmp_path)
    before = weights.read_bytes(), metadata_path(weights).read_text()
    with pytest.raises(FileExistsError, match=r"model\.safetensors.*overwrite=true"):
        export(checkpoint, "safetensors", tmp_path)
    assert (weights.read_bytes(), metadata_path(weights).read_text()) == before
    cfg = compose_config(
        "export", [f"ckpt_path={checkpoint}", f"output_dir={tmp_path}", "overwrite=true"]
    )
    assert export(cfg.ckpt_path, cfg.format, cfg.output_dir, cfg.name, overwrite=cfg.overwrite)
    load_exported(weights)


def test_unknown_format_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"format='keras'; choose one of \['safetensors', 'onnx', 'torchscript'\]"
    ):
        export(checkpoint, "keras", tmp_path)


def test_predict_from_the_safetensors_export_alone(
    checkpoint: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    """export → predict: the export gives the checkpoint's predictions, heatmaps included."""
    cfg = compose_config("export", [f"ckpt_path={checkpoint}", f"output_dir={tmp_path / 'x'}"])
    weights = export(cfg.ckpt_path, cfg.format, cfg.output_dir, cfg.name)
    inputs = covidx5k_shared / "test"
    frames = {}
    for name, model in (("export", weights), ("checkpoint", checkpoint)):
        overrides = [f"ckpt_path={model}", f"inputs={inputs}", "explainer=gradcam"]
        out = tmp_path / name
        frames[name] = pd.read_csv(predict(compose_config("predict", overrides, str(out))))
        assert len(list((out / "heatmaps").rglob("*.png"))) == len(frames[name])
    pd.testing.assert_frame_equal(frames["export"], frames["checkpoint"])
    assert len(frames["export"]) == 14
