"""predict(): files, folders and CSVs in, predictions.csv and overlays out, from a checkpoint
that carries its own preprocessing and thresholds."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import torch

from deepcovid.data.io import load_image
from deepcovid.data.samples import list_inputs
from deepcovid.data.transforms import EvalPreset
from deepcovid.models.checkpoints import load_classifier, read_record
from deepcovid.predict import predict
from deepcovid.utils.config import compose_config
from deepcovid.utils.files import flat_name, sha256_of
from tests.conftest import CXR_DEV, SHARED_DATA, best_checkpoint, requires_real_data

DICOM = SHARED_DATA / "dicom"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoint(tiny_run: Path) -> Path:
    return best_checkpoint(tiny_run)


def run_predict(checkpoint: Path, inputs: Path, out: Path, *extra: str) -> pd.DataFrame:
    overrides = [f"ckpt_path={checkpoint}", f"inputs={inputs}", *extra]
    written = predict(compose_config("predict", overrides, output_dir=str(out)))
    assert written == out / "predictions.csv"
    return pd.read_csv(written)


def direct_prob_covid(checkpoint: Path, paths: list[str]) -> np.ndarray:
    classifier = load_classifier(checkpoint)
    transform = EvalPreset(classifier.record.preprocessing)
    images = torch.stack([transform(load_image(p)) for p in paths])
    with torch.inference_mode():
        return classifier.prob_covid(images).numpy()


def test_a_checkpoint_copied_alone_predicts_what_evaluate_predicted(
    tiny_run: Path, checkpoint: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    alone = tmp_path / "empty" / "model.ckpt"  # no run folder, no config beside it
    alone.parent.mkdir()
    shutil.copy(checkpoint, alone)
    frame = run_predict(alone, covidx5k_shared / "test", tmp_path / "out", "batch_size=8")
    evaluated = pd.read_csv(tiny_run / "predictions" / "test.csv")
    assert frame["path"].tolist() == evaluated["path"].tolist()
    np.testing.assert_array_equal(frame["prob_covid"], evaluated["prob_covid"])


def test_operating_points_come_from_the_checkpoint(checkpoint: Path, covidx5k_shared, tmp_path):
    record = read_record(checkpoint)
    chosen = record.operating_points["target_sensitivity"]["threshold"]
    frame = run_predict(
        checkpoint, covidx5k_shared / "test", tmp_path / "a", "operating_point=target_sensitivity"
    )
    assert (frame["predicted_label"] == (frame["prob_covid"] >= chosen)).all()
    # a rule outside the choices stops at composition (tests/utils/test_choices.py); one this
    # model's record lacks stops here, naming the rules it has
    with pytest.raises(ValueError, match=r"operating_point='best'; this model has \['fixed'"):
        record.threshold_of("best")


def test_folder_with_an_unreadable_file(checkpoint, covidx5k_shared, tmp_path, caplog):
    inputs = tmp_path / "in"
    shutil.copytree(covidx5k_shared / "test" / "covid", inputs / "covid")
    (inputs / "broken.png").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING):
        frame = run_predict(checkpoint, inputs, tmp_path / "out", "explainer=gradcam")
    assert list(frame.columns) == [
        "path",
        "prob_covid",
        "predicted_label",
        "in_scope",
        "scope_reason",
    ]
    assert len(frame) == 6 and not frame["path"].str.contains("broken").any()
    assert "broken.png" in caplog.text  # reported by name, the rest still processed
    assert np.allclose(frame["prob_covid"], direct_prob_covid(checkpoint, list(frame["path"])))
    threshold = read_record(checkpoint).threshold  # the checkpoint's own cut-off
    assert (frame["predicted_label"] == (frame["prob_covid"] >= threshold)).all()
    overlays = sorted((tmp_path / "out" / "heatmaps").glob("*.png"))
    assert [p.name for p in overlays] == sorted(f"covid__{Path(p).name}.png" for p in frame["path"])
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in overlays)


def test_csv_input_threshold_and_occlusion(checkpoint, covidx5k_shared, tmp_path, caplog):
    images = sorted((covidx5k_shared / "test" / "non").iterdir())[:2]
    listing = tmp_path / "list.csv"
    relative = [str(Path("..") / p.relative_to(covidx5k_shared.parent)) for p in images]
    shutil.copytree(covidx5k_shared, tmp_path / "covidx5k")
    pd.DataFrame({"path": [*relative, "missing.png"]}).to_csv(listing, index=False)
    (tmp_path / "sub").mkdir()
    shutil.move(listing, tmp_path / "sub" / "list.csv")
    with caplog.at_level(logging.WARNING):
        frame = run_predict(
            checkpoint,
            tmp_path / "sub" / "list.csv",
            tmp_path / "out",
            "threshold=0.5",
            "explainer=occlusion",
            "explainer.window=8",
            "explainer.stride=4",
        )
    assert len(frame) == 2 and "missing.png" in caplog.text
    assert (frame["predicted_label"] == (frame["prob_covid"] >= 0.5)).all()
    assert len(list((tmp_path / "out" / "heatmaps").glob("*.png"))) == 2


def test_single_file(checkpoint, covidx5k_shared, tmp_path):
    image = sorted((covidx5k_shared / "test" / "covid").iterdir())[0]
    frame = run_predict(checkpoint, image, tmp_path / "out")
    assert frame["path"].tolist() == [str(image)]
    assert not (tmp_path / "out" / "heatmaps").exists()  # explainer=none


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list_inputs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        list_inputs(tmp_path / "empty")
    (tmp_path / "list.csv").write_text("file\nx.png\n")
    with pytest.raises(ValueError, match="'path' column"):
        list_inputs(tmp_path / "list.csv")


def test_no_readable_input_is_an_error(checkpoint, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 1 inputs"):
        run_predict(checkpoint, tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out" / "predictions.csv").exists()


@requires_real_data
def test_real_radiographs_and_dicom(checkpoint, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for folder in ("covid", "non"):
        for image in sorted((CXR_DEV / "test" / folder).iterdir())[:2]:
            shutil.copy(image, inputs / image.name)
    dicoms = sorted(DICOM.glob("*.dcm")) if DICOM.is_dir() else []
    for dicom in dicoms:
        shutil.copy(dicom, inputs / dicom.name)
    frame = run_predict(
        checkpoint,
        inputs,
        tmp_path / "out",
        "explainer=occlusion",
        "explainer.window=8",
        "explainer.stride=8",
    )
    assert len(frame) == 4 + len(dicoms)
    assert frame["prob_covid"].between(0, 1).all()
    names = {p.name for p in (tmp_path / "out" / "heatmaps").glob("*.png")}
    assert names == {f"{Path(p).name}.png" for p in frame["path"]}
    suffixes = {Path(p).suffix.lower() for p in frame["path"]}
    assert suffixes - {".dcm"} and suffixes - {".dcm"} <= {".jpg", ".jpeg", ".png"}
    assert (".dcm" in suffixes) == bool(dicoms)


def test_dicom_output_for_dicom_inputs_only(
    checkpoint: Path, covidx5k_shared, tmp_path, caplog: pytest.LogCaptureFixture
):
    """A folder of written CRs (two of one name in subfolders), one CR whose header cannot be
    referenced, one that does not decode and a PNG: an SR and a lung mask SEG for each written
    CR (no overlay without an explainer), in files of their own; the others counted and
    named, the PNG's missing SEG said once."""
    import json

    import highdicom as hd

    from deepcovid.dicom.segmentation import on_source_grid
    from deepcovid.lungs.crop import crop_mask_provider
    from tests.dicom.conftest import write_cr

    inputs = tmp_path / "in"
    inputs.mkdir()
    write_cr(inputs / "good.dcm", patient_age="45")
    broken = write_cr(inputs / "no-study.dcm")
    dataset = pydicom.dcmread(broken)
    del dataset.StudyInstanceUID
    dataset.save_as(broken)
    shutil.copy(next((covidx5k_shared / "test" / "covid").iterdir()), inputs / "plain.png")
    for study in ("a", "b"):
        (inputs / study).mkdir()
        write_cr(inputs / study / "IM1.dcm")
    (inputs / "garbage.dcm").write_bytes(b"not a DICOM file")
    with caplog.at_level(logging.INFO, logger="deepcovid.predict"):
        frame = run_predict(
            checkpoint, inputs, tmp_path / "out", "dicom_output=true", "threshold=0.37"
        )
    listed = json.loads((tmp_path / "out" / "dicom" / "results.json").read_text())
    by_source = {Path(entry["source"]).name: entry for entry in listed["written"]}
    said = [r.getMessage() for r in caplog.records if "no lung mask SEG" in r.getMessage()]
    assert len(said) == 1 and "1 non-DICOM input(s)" in said[0]
    assert len(list((tmp_path / "out" / "dicom").glob("*.seg.dcm"))) == 3
    assert len(listed["written"]) == 3 and set(by_source) == {"good.dcm", "IM1.dcm"}
    reports = {entry["report"] for entry in listed["written"]}
    assert len(reports) == 3 and all(Path(report).is_file() for report in reports)
    written = by_source["good.dcm"]
    assert written["overlay"] is None
    assert listed["not_dicom"] == [str(inputs / "plain.png")]
    assert listed["unreadable"] == [str(inputs / "garbage.dcm")]
    assert "lacks StudyInstanceUID" in listed["failed"][str(inputs / "no-study.dcm")]
    sr = hd.sr.srread(written["report"])
    [group] = sr.content.get_image_measurement_groups()
    [measurement] = group.get_measurements(
        name=hd.sr.CodedConcept("111012", "DCM", "Certainty of Finding")
    )
    prob = frame.set_index("path").loc[str(inputs / "good.dcm"), "prob_covid"]
    assert measurement.value == pytest.approx(prob, abs=1e-6)
    parameters = [str(item.TextValue) for item in group[0].ContentSequence if "TextValue" in item]
    assert "operating point: threshold 0.37 given at prediction" in parameters
    assert f"weights sha256: {sha256_of(checkpoint)}" in parameters
    # the lung mask SEG: the mask deepcovid finds for the image, on the source's grid
    found = crop_mask_provider("any").mask_for(inputs / "good.dcm")
    assert written["lung_mask_origin"] == found.origin == "segmenter"
    seg = hd.seg.segread(written["segmentation"])
    source = pydicom.dcmread(inputs / "good.dcm", stop_before_pixels=True)
    read = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    expected = on_source_grid(found.mask, source.Rows, source.Columns)
    np.testing.assert_array_equal(read[0, ..., 0].astype(bool), expected)
    assert expected.any() and seg.SegmentSequence[0].SegmentLabel == "Lung"
    evidence = {uids[2] for uids in sr.get_evidence()}
    assert evidence == {source.SOPInstanceUID, written["segmentation_uid"]}


COLLIDING = ["a/IM.dcm", "a__IM.dcm", "a_/_IM.dcm", "a/__IM.dcm"]  # one flat name per pair before


def test_flat_names_are_distinct_for_distinct_inputs(tmp_path: Path) -> None:
    names = [*COLLIDING, "a/IM_1.dcm", "_a_/b", "%5F%5F", "a%5F%5FIM.dcm", "a/b/c"]
    flat = [flat_name(tmp_path / name, tmp_path) for name in names]
    assert len(set(flat)) == len(names) and "/" not in "".join(flat)
    assert flat[0] == "a__IM.dcm" and flat[4] == "a__IM_1.dcm"  # plain names stay readable


def test_dicom_results_and_overlays_of_colliding_names_are_kept_apart(checkpoint, tmp_path):
    """Four DICOM inputs whose ``__``-joined paths collide in pairs: four SRs, four overlay
    SCs and four heatmaps, each SR holding its own input's result."""
    import json

    import highdicom as hd

    from tests.dicom.conftest import write_cr

    inputs = tmp_path / "in"
    for name in COLLIDING:
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        write_cr(inputs / name)
    frame = run_predict(
        checkpoint, inputs, tmp_path / "out", "dicom_output=true", "explainer=gradcam"
    )
    listed = json.loads((tmp_path / "out" / "dicom" / "results.json").read_text())
    assert len(listed["written"]) == len(frame) == 4
    assert len(list((tmp_path / "out" / "dicom").glob("*.sr.dcm"))) == 4
    assert len(list((tmp_path / "out" / "dicom").glob("*.overlay.dcm"))) == 4
    assert len(list((tmp_path / "out" / "heatmaps").glob("*.png"))) == 4
    for entry in listed["written"]:
        source = pydicom.dcmread(entry["source"], stop_before_pixels=True)
        sr = hd.sr.srread(entry["report"])
        assert sr.StudyInstanceUID == source.StudyInstanceUID
        overlay = pydicom.dcmread(entry["overlay"], stop_before_pixels=True)
        assert overlay.StudyInstanceUID == source.StudyInstanceUID
