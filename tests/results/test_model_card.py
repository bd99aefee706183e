"""The classifier's model card (Hugging Face format) that export writes beside the weights:
its metrics are the run's, it never borrows another evaluation's numbers, and it never
overwrites a README it did not write."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from deepcovid.export import export
from deepcovid.results.model_card import card_metadata
from deepcovid.utils.config import compose_config
from tests.conftest import best_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tiny_run: Path) -> Path:
    return best_checkpoint(tiny_run)


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
