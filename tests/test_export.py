"""Export → load round trips: the export carries the checkpoint's record and predicts what the
checkpoint predicts, without Lightning or pickle."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepcovid.data.io import load_image
from deepcovid.data.transforms import EvalPreset
from deepcovid.export import export
from deepcovid.models.checkpoints import load_classifier, read_record
from deepcovid.models.exported import load_exported, metadata_path, read_metadata
from deepcovid.predict import predict
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
