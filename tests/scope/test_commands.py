"""Out-of-scope inputs end to end: predict (CSV columns, no call, the DICOM SR), training start
(data.out_of_scope), data.check and lungs.segment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import highdicom as hd
import pandas as pd
import pytest

from deepcovid.data.check import main as check_main
from deepcovid.data.datamodule import OutOfScopeError, XrayDataModule
from deepcovid.dicom.codes import CERTAINTY_OF_FINDING, COMMENT, COVID_19
from deepcovid.lungs.segment import segment_files
from deepcovid.lungs.segmenter import load_segmenter
from deepcovid.predict import predict
from deepcovid.scope.check import NOT_ASSESSED, NOT_FRONTAL, load_checker
from deepcovid.utils.config import compose_config
from deepcovid.utils.files import flat_name
from tests.conftest import CXR_DEV, best_checkpoint, requires_real_data
from tests.dicom.sr_text import render_sr_text
from tests.scope.conftest import heldout_images

N_PER_KIND = {"frontal": 4, "lateral": 3, "ct": 2}


@pytest.fixture(scope="module")
def checkpoint(tiny_run: Path) -> Path:
    return best_checkpoint(tiny_run)


def mixed_folder(folder: Path) -> dict[str, str]:
    """Held-out frontal (cxr-dev), lateral and CT images copied into ``folder``: name → kind."""
    images = heldout_images()
    images = images[images["path"].str.startswith(str(CXR_DEV)) | (images["kind"] != "frontal")]
    kinds = {}
    for kind, count in N_PER_KIND.items():
        for source in sorted(images.loc[images["kind"] == kind, "path"])[:count]:
            target = folder / kind / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
            kinds[target.name] = kind
    return kinds


def run_predict(checkpoint: Path, inputs: Path, out: Path, *extra: str) -> pd.DataFrame:
    overrides = [f"ckpt_path={checkpoint}", f"inputs={inputs}", *extra]
    return pd.read_csv(
        predict(compose_config("predict", overrides, output_dir=str(out))),
        keep_default_na=False,
    )


@requires_real_data
def test_predict_makes_no_call_for_lateral_and_ct_images(checkpoint, tmp_path: Path) -> None:
    kinds = mixed_folder(tmp_path / "in")
    frame = run_predict(
        checkpoint, tmp_path / "in", tmp_path / "skip", "out_of_scope=skip", "explainer=gradcam"
    )
    frame["kind"] = [kinds[Path(p).name] for p in frame["path"]]
    verdicts, _ = load_checker().check_paths(map(Path, frame["path"]))
    assert len(frame) == sum(N_PER_KIND.values())
    assert frame["in_scope"].tolist() == [verdicts[Path(p)].in_scope for p in frame["path"]]
    assert frame["scope_reason"].tolist() == [verdicts[Path(p)].reason for p in frame["path"]]
    inside, outside = frame[frame["in_scope"]], frame[~frame["in_scope"]]
    assert set(outside["kind"]) >= {"lateral", "ct"} and len(inside) >= 3  # frontal films
    assert (frame["kind"] != "frontal").sum() == (outside["kind"] != "frontal").sum()
    assert inside["scope_reason"].eq("").all()
    assert inside["prob_covid"].astype(float).between(0, 1).all()
    assert outside["scope_reason"].str.startswith("image check: ").all()
    assert outside["prob_covid"].eq("").all() and outside["predicted_label"].eq("").all()
    heatmaps = {p.name for p in (tmp_path / "skip" / "heatmaps").glob("*.png")}
    assert heatmaps == {f"{flat_name(Path(p), tmp_path / 'in')}.png" for p in inside["path"]}
    scored = run_predict(checkpoint, tmp_path / "in", tmp_path / "score", "out_of_scope=score")
    assert scored["prob_covid"].ne("").all()
    assert scored["in_scope"].tolist() == frame["in_scope"].tolist()  # scored, still flagged


def test_dicom_sr_says_not_assessed_for_ct_and_lateral(
    checkpoint, header_dicoms, tmp_path: Path
) -> None:
    frame = run_predict(
        checkpoint,
        header_dicoms["ct"].parent,
        tmp_path / "out",
        "out_of_scope=skip",
        "dicom_output=true",
    )
    reasons = {Path(p).stem: r for p, r in zip(frame["path"], frame["scope_reason"], strict=True)}
    assert reasons["ct"] == "DICOM Modality CT" and reasons["lateral"] == "DICOM ViewPosition LL"
    listed = json.loads((tmp_path / "out" / "dicom" / "results.json").read_text())
    reports = {Path(e["source"]).stem: Path(e["report"]) for e in listed["written"]}
    for name, reason in (("ct", "DICOM Modality CT"), ("lateral", "DICOM ViewPosition LL")):
        sr = hd.sr.srread(reports[name])
        [group] = sr.content.get_image_measurement_groups()
        assert group.finding_type == COVID_19
        assert not group.get_measurements(name=CERTAINTY_OF_FINDING)
        assert not group.get_qualitative_evaluations(name=COVID_19)
        [comment] = group[0].ContentSequence.find(COMMENT)
        assert comment.value == f"{NOT_ASSESSED} ({reason})"
        assert NOT_ASSESSED in render_sr_text(reports[name])


def judged_outside(folder: Path, kinds: dict[str, str]) -> set[str]:
    """Names the shipped check puts out of scope: every lateral and CT image (checked here),
    and any frontal film it misses (one of 121 held out)."""
    verdicts, _ = load_checker().check_paths(sorted(folder.rglob("*.*")))
    outside = {path.name for path, verdict in verdicts.items() if not verdict.in_scope}
    assert outside >= {name for name, kind in kinds.items() if kind != "frontal"}
    return outside


def mixed_manifest(folder: Path) -> tuple[Path, dict[str, str]]:
    kinds = mixed_folder(folder)
    rows = [
        {
            "path": f"{kind}/{name}",
            "label": "covid" if i % 2 else "non-covid",
            "patient_id": f"p{i}",
            "split": ("train", "val", "test")[i % 3],
        }
        for i, (name, kind) in enumerate(sorted(kinds.items()))
    ]
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest, kinds


@requires_real_data
def test_training_start_excludes_or_refuses_out_of_scope_images(tmp_path: Path) -> None:
    manifest, kinds = mixed_manifest(tmp_path / "data")
    outside = judged_outside(tmp_path / "data", kinds)
    settings = {"num_workers": 0, "val_fraction": 0.25, "image_size": 32}
    excluded = XrayDataModule(str(tmp_path / "data"), out_of_scope="exclude", **settings)
    excluded.setup("fit")
    assert {Path(p).name for p in excluded.table["path"]} == set(kinds) - outside
    assert {Path(p).name for p in excluded.skipped} == outside
    assert all(why.startswith("out of scope: image check") for why in excluded.skipped.values())
    kept = XrayDataModule(str(tmp_path / "data"), out_of_scope="keep", **settings)
    kept.setup("fit")
    assert len(kept.table) == len(kinds) and {Path(p).name for p in kept.not_frontal} == outside
    with pytest.raises(OutOfScopeError, match="data.out_of_scope=exclude") as raised:
        XrayDataModule(str(tmp_path / "data"), out_of_scope="error", **settings).setup("fit")
    assert all(name in str(raised.value) for name in outside)


def test_excluding_every_image_of_a_class_stops_naming_the_fix(covidx5k: Path) -> None:
    """Generated images are not radiographs: excluding them leaves nothing to train on, which
    is said as such (before: a split error about 0 patient groups)."""
    datamodule = XrayDataModule(str(covidx5k), out_of_scope="exclude", num_workers=0)
    with pytest.raises(OutOfScopeError) as raised:
        datamodule.setup("fit")
    message = str(raised.value)
    assert "50 of 50 images are not frontal chest radiographs" in message
    assert "leaves no non-covid and no covid image" in message
    assert "data.out_of_scope=keep" in message and "img000.png" in message


def test_out_of_scope_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data.out_of_scope='drop'"):
        XrayDataModule(str(tmp_path), out_of_scope="drop")


@requires_real_data
def test_data_check_lists_out_of_scope_images(tmp_path: Path, capsys) -> None:
    manifest, kinds = mixed_manifest(tmp_path / "data")
    report = tmp_path / "check.json"
    assert check_main([str(manifest), "--fast", "--json", str(report)]) == 0
    listed = json.loads(report.read_text())["out_of_scope"]
    outside = judged_outside(tmp_path / "data", kinds)
    assert {Path(p).name for p in listed} == outside
    assert f"not frontal chest radiographs ({len(outside)};" in capsys.readouterr().out


@requires_real_data
def test_segment_flags_out_of_scope_images(tmp_path: Path) -> None:
    kinds = mixed_folder(tmp_path / "in")
    paths = sorted((tmp_path / "in").rglob("*.*"))
    run = segment_files(load_segmenter(), paths, tmp_path / "out", scope=load_checker())
    flags = {
        Path(p).name: f for p, f in zip(run.table["path"], run.table["quality_flag"], strict=True)
    }
    outside = judged_outside(tmp_path / "in", kinds)
    for name in kinds:
        assert flags[name].startswith(f"{NOT_FRONTAL}: image check") == (name in outside)
