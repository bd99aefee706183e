"""Issue 20's hospital confound, on real radiographs: a copy of cxr-dev whose COVID training
images all come from 'hospital A' (burned-in label: plant.py's marker) and non-COVID ones from
'hospital B' (a contrast curve and a white burned-in box), with a test source that holds both
classes unprocessed. A tiny model learns the look; report.md and audit/report.md must both
say, in words, that its AUROC collapses within the source holding both classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from deepcovid.audit import audit
from deepcovid.metrics.discrimination import auroc
from deepcovid.shortcuts.plant import draw_marker, marker_box
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.conftest import CXR_DEV, best_checkpoint, requires_real_data

pytestmark = [requires_real_data, pytest.mark.realdata, pytest.mark.slow]
MIXED = "COVID-19 image data collection"  # cxr-dev's source holding both classes
LOOKS = {"hospital A": "covid", "hospital B": "non-covid"}


def hospital_b(image: Image.Image) -> Image.Image:
    """A brighter contrast curve and a white box where hospital A burns in its label."""
    image = image.convert("L").point(lambda v: int(255 * (v / 255) ** 0.5)).convert("RGB")
    x, y, side = marker_box(image.size)
    ImageDraw.Draw(image).rectangle((x, y, x + side, y + side), fill=(255, 255, 255))
    return image


def confounded_copy(target: Path) -> Path:
    """cxr-dev's images under new sources: all training images and some test images of each
    class get their hospital's look; the rest of the test set keeps its real source."""
    manifest = pd.read_csv(CXR_DEV / "manifest.csv")
    split = manifest["path"].str.split("/").str[0]
    rank = manifest.groupby([split, manifest["label"]]).cumcount()
    looked = (split == "train") | (rank < manifest["label"].map({"covid": 40, "non-covid": 15}))
    manifest.loc[looked, "source"] = manifest.loc[looked, "label"].map(
        {label: source for source, label in LOOKS.items()}
    )
    for row in manifest[looked].itertuples():
        out = target / row.path
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(CXR_DEV / row.path) as image:
            look = draw_marker if row.source == "hospital A" else hospital_b
            look(image).save(out.with_suffix(".png"))
        manifest.loc[row.Index, "path"] = str(Path(row.path).with_suffix(".png"))
    for row in manifest[~looked].itertuples():
        (target / row.path).parent.mkdir(parents=True, exist_ok=True)
        (target / row.path).write_bytes((CXR_DEV / row.path).read_bytes())
    manifest.drop(columns=["sha256_original"]).to_csv(target / "manifest.csv", index=False)
    return target


def test_both_reports_say_the_auroc_collapses_within_the_mixed_source(tmp_path: Path) -> None:
    data = confounded_copy(tmp_path / "data")
    run = tmp_path / "run"
    overrides = [
        f"data.root={data}", "model.pretrained=false", "model.finetune=full",
        "model.optimizer.lr=1e-3", "data.image_size=48", "data.batch_size=32", "data.cache=true",
        "data.balance=weighted_loss", "data.augmentation.hflip_prob=0", "trainer.max_epochs=5",
        "metrics.bootstrap_resamples=200", "logger=csv", "trainer=cpu", "data.num_workers=0",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "print_config=false",
    ]  # fmt: skip
    train(compose_config("train", overrides, str(run)))
    test = pd.read_csv(run / "predictions" / "test.csv")
    looks = test[test["source"].isin(list(LOOKS))]
    learned = auroc(looks["label"].to_numpy(), looks["prob_covid"].to_numpy(np.float64))
    assert learned >= 0.9, learned  # the model learned the hospitals' looks
    report = (run / "report.md").read_text()
    care = report.split("## Read these numbers with care")[1].split("\n## ")[0]
    assert f"Within source '{MIXED}', which holds both classes" in care, care
    assert "comes largely from telling the source values apart" in care
    audited = audit(compose_config("audit", [
        f"ckpt_path={best_checkpoint(run)}", f"data.root={data}", "audit.explainers.occlusion=null",
        "audit.masks.v7=false", "audit.masks.segmenter=false", "logger=csv", "audit.sanity=null",
        "audit.bootstrap_resamples=200", "print_config=false", "data.num_workers=0",
    ], str(tmp_path / "audit")))  # fmt: skip
    (finding,) = [f for f in audited.flags if f.startswith(f"Within source '{MIXED}'")]
    audit_md = (tmp_path / "audit" / "audit" / "report.md").read_text()
    assert f"- {finding}." in audit_md.split("## Findings")[1].split("\n## ")[0]
    source = audited.confounders["source"]
    (mixed,) = [s for s in source.strata if s.value == MIXED]
    print(f"confounded: looks {learned:.3f}, overall {source.auroc:.3f}, within {MIXED} "
          f"{mixed.auroc:.3f} {mixed.auroc_ci}")  # fmt: skip
