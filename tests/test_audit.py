"""audit(): every file, numbers that a recomputation from images.csv reproduces, what it does
without masks, and the test-time callback."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from deepcovid.audit import audit
from deepcovid.shortcuts.result import AuditResult
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.conftest import TINY_RUN, best_checkpoint, tiny_overrides

QUIET = ["logger=none", "print_config=false", "data.num_workers=0", "audit.bootstrap_resamples=100"]
FAST = ["audit.explainers.occlusion.window=16", "audit.explainers.occlusion.stride=16"]


@pytest.fixture(scope="module")
def mask_dir(covidx5k_shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lung mask for every generated image: the middle third of the image, by stem."""
    folder = tmp_path_factory.mktemp("masks")
    for image in covidx5k_shared.rglob("*.*"):
        with Image.open(image) as opened:
            width, height = opened.size
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 255
        Image.fromarray(mask).save(folder / f"{image.stem}.png")
    return folder


@pytest.fixture(scope="module")
def audited(tiny_run: Path, covidx5k_shared: Path, mask_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("audit")
    overrides = [
        f"ckpt_path={best_checkpoint(tiny_run)}", f"data.root={covidx5k_shared}",
        f"data.lung_masks={mask_dir}", "audit.masks.v7=false", *QUIET, *FAST,
    ]  # fmt: skip
    audit(compose_config("audit", overrides, str(out)))
    return out / "audit"


def test_every_file_is_written(audited: Path) -> None:
    for name in ("audit.json", "images.csv", "report.md", "figures/lung_share.png",
                 "figures/overlays.png"):  # fmt: skip
        assert (audited / name).is_file(), name
    report = (audited / "report.md").read_text()
    assert report.startswith("# Does the model look at the lungs? resnet18 on the test split")
    assert "14 have a lung mask (14 folder)" in report
    images = pd.read_csv(audited / "images.csv")
    expected = ["path", "label", "source", "prob_covid", "prob_covid_lungs_removed",
                "prob_covid_lungs_only", "lung_share_occlusion", "lung_area_share",
                "peak_in_lungs_occlusion", "mask_source"]  # fmt: skip
    assert set(expected) <= set(images) and len(images) == 14


def test_the_heatmap_sanity_checks_are_in_every_output(audited: Path) -> None:
    result = AuditResult.from_json(json.loads((audited / "audit.json").read_text()))
    assert set(result.sanity) == {"occlusion", "gradcam"}
    for check in result.sanity.values():
        steps = check.randomisation.steps
        assert [s.step for s in steps][:2] == ["head", "head + top 25% of layers"]
        assert check.randomisation.n_images == 14  # every test image (16 asked for)
        assert all(-1 <= s.spearman <= 1 and -1 <= s.ssim <= 1 for s in steps)
        assert check.deletion.fractions[0] == 0 and len(check.deletion.random) == 7
        assert check.deletion.attributed[0] == pytest.approx(check.deletion.random[0])
    report = (audited / "report.md").read_text()
    assert "## Heatmap sanity checks" in report and "figures/sanity.png" in report
    assert "### Grad-CAM: randomisation" in report
    assert (audited / "figures" / "sanity.png").is_file()


def test_audit_json_agrees_with_a_recomputation_from_images_csv(audited: Path, tiny_run) -> None:
    result = AuditResult.from_json(json.loads((audited / "audit.json").read_text()))
    images = pd.read_csv(audited / "images.csv")
    label = images["label"].to_numpy()
    for variant, column in (("intact", "prob_covid"), ("lungs_removed", "prob_covid_lungs_removed"),
                            ("lungs_only", "prob_covid_lungs_only")):  # fmt: skip
        assert result.ablation[variant].auroc == pytest.approx(roc_auc_score(label, images[column]))
    for method in ("occlusion", "gradcam"):
        overall = result.lung_attribution[method].overall
        shares = images[f"lung_share_{method}"].dropna()
        assert (
            overall.n == len(shares)
            and overall.zero_maps == images[f"lung_share_{method}"].isna().sum()
        )
        if len(shares):
            assert overall.mean_share == pytest.approx(shares.mean())
            peaks = images.loc[shares.index, f"peak_in_lungs_{method}"].astype(bool)
            assert overall.pointing_hit_rate == pytest.approx(peaks.mean())
        by_class = result.lung_attribution[method].by_class
        assert sum(a.n for a in by_class.values()) == overall.n
    # the images are the model's test predictions: the same scores as its evaluation
    evaluated = pd.read_csv(tiny_run / "predictions" / "test.csv").set_index("path")
    np.testing.assert_allclose(
        images.set_index("path").loc[evaluated.index, "prob_covid"], evaluated["prob_covid"],
        atol=1e-6,
    )  # fmt: skip
    assert images["lung_area_share"].between(0.1, 0.3).all()  # the middle third, cropped


def test_without_masks_the_audit_runs_what_needs_none(tiny_run, covidx5k_shared, tmp_path):
    overrides = [
        f"ckpt_path={best_checkpoint(tiny_run)}", f"data.root={covidx5k_shared}",
        "audit.masks.v7=false", "audit.masks.segmenter=false", *QUIET, *FAST,
    ]  # fmt: skip
    result = audit(compose_config("audit", overrides, str(tmp_path)))
    assert result.masks.n_with_mask == 0 and len(result.masks.missing) == 14
    assert result.lung_attribution == {} and result.ablation is None
    assert "no image has a lung mask" in result.skipped["ablation"]
    assert result.skipped["confounder source"] == "no image has a source"
    report = (tmp_path / "audit" / "report.md").read_text()
    assert "## Not measured" in report and "no image has a lung mask" in report


@pytest.mark.slow
def test_the_audit_callback_runs_after_the_final_test(covidx5k_shared, mask_dir, tmp_path):
    overrides = tiny_overrides(
        covidx5k_shared, tmp_path, *TINY_RUN, "callbacks.audit.enabled=true",
        f"data.lung_masks={mask_dir}", "audit.masks.v7=false",
        "audit.explainers.occlusion.stride=16",
        "audit.bootstrap_resamples=50", "audit.sanity=null",
    )  # fmt: skip
    train(compose_config("train", overrides, str(tmp_path)))
    result = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert result["checkpoint"] == str(best_checkpoint(tmp_path))
    checklist = (tmp_path / "checklist.md").read_text()  # written after the audit: cites it
    assert "(from `audit/audit.json`, `audit/report.md`)" in checklist
    assert result["masks"]["by_origin"] == {"folder": 14}
    logged = pd.read_csv(tmp_path / "csv" / "metrics.csv")
    assert logged["audit/intact/auroc"].dropna().iloc[0] == pytest.approx(
        result["ablation"]["intact"]["auroc"]
    )


def test_the_report_names_the_confidence_of_its_intervals(audited: Path) -> None:
    from deepcovid.shortcuts.report import audit_report

    result = AuditResult.from_json(json.loads((audited / "audit.json").read_text()))
    assert result.confidence == 0.95 and "AUROC (95 % CI)" in audit_report(result)
    at_90 = audit_report(AuditResult(**{**vars(result), "confidence": 0.9}))
    assert "AUROC (90 % CI)" in at_90 and "Intervals: 90 %" in at_90  # flags: made with it


def test_blank_lung_mask_cells_fall_back_to_the_next_mask(
    tiny_run: Path, covidx5k_shared: Path, mask_dir: Path, tmp_path: Path
) -> None:
    """A manifest whose lung_mask column is filled for some rows only (blank cells are NaN
    under pandas 3): given masks where named, the folder's elsewhere."""
    images = sorted((covidx5k_shared / "test").rglob("*.*"))
    rows = [
        f"{image},{image.parent.name},{mask_dir / (image.stem + '.png') if i % 2 else ''}"
        for i, image in enumerate(images)
    ]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,lung_mask\n" + "\n".join(rows) + "\n")
    overrides = [
        f"ckpt_path={best_checkpoint(tiny_run)}", f"data.root={covidx5k_shared}",
        f"data.manifest={manifest}", "external=true", f"data.lung_masks={mask_dir}",
        "audit.masks.v7=false", "audit.masks.segmenter=false", "audit.sanity=null", *QUIET, *FAST,
    ]  # fmt: skip
    result = audit(compose_config("audit", overrides, str(tmp_path)))
    assert result.masks.by_origin == {"given": 7, "folder": 7}
