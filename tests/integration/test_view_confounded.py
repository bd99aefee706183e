"""Issue 22's view confound, planted on real radiographs: a copy of cxr-dev whose 'AP' images
get a bedside look (a brighter contrast curve and a black border) and whose view goes with the
label (training: COVID all AP, non-COVID all PA; test: COVID mostly AP, non-COVID mostly PA,
both views holding both classes). A tiny model learns the look; the confounder audit must say
that its AUROC falls within each view, and each number must recompute from images.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps
from sklearn.metrics import roc_auc_score

from deepcovid.audit import audit
from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.conftest import CXR_DEV, best_checkpoint, requires_real_data
from tests.shortcuts.test_confounders import pairs_auroc

pytestmark = [requires_real_data, pytest.mark.realdata, pytest.mark.slow]
AP_IN_TEST = {"covid": 100, "non-covid": 3}  # of cxr-dev's 106 COVID and 29 non-COVID tests
SIDE = 96  # the copy's images fit in this square


def bedside(image: Image.Image) -> Image.Image:
    """The AP look: a brighter contrast curve and a black border of 8 % of the short side."""
    image = image.point(lambda v: int(255 * (v / 255) ** 0.4))
    border = int(0.08 * min(image.size))
    inner = image.crop((border, border, image.width - border, image.height - border))
    return ImageOps.expand(inner, border=border, fill=0)


def view_confounded_copy(target: Path) -> Path:
    """cxr-dev with the planted view: every AP image (by the new view column) gets the look."""
    manifest = pd.read_csv(CXR_DEV / "manifest.csv")
    split = manifest["path"].str.split("/").str[0]
    rank = manifest.groupby([split, manifest["label"]]).cumcount()
    in_test = rank < manifest["label"].map(AP_IN_TEST)
    ap = np.where(split == "train", manifest["label"] == "covid", in_test)
    manifest["view"] = np.where(ap, "AP", "PA")
    for row in manifest.itertuples():
        out = target / Path(row.path).with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(CXR_DEV / row.path) as image:
            small = ImageOps.contain(image.convert("L"), (SIDE, SIDE))  # the model sees 32 px
        (bedside(small) if row.view == "AP" else small).save(out)
    manifest["path"] = manifest["path"].map(lambda p: str(Path(p).with_suffix(".png")))
    manifest.drop(columns=["sha256_original"]).to_csv(target / "manifest.csv", index=False)
    return target


def test_the_confounder_audit_says_the_auroc_comes_from_the_view_mix(tmp_path: Path) -> None:
    data = view_confounded_copy(tmp_path / "data")
    run = tmp_path / "run"
    train(compose_config("train", [
        f"data.root={data}", "model.pretrained=false", "model.finetune=full",
        "model.optimizer.lr=1e-3", "data.image_size=32", "data.batch_size=32", "data.cache=true",
        "data.balance=weighted_loss", "trainer.max_epochs=4", "metrics.bootstrap_resamples=50",
        "logger=csv", "trainer=cpu", "data.num_workers=0", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", "print_config=false",
    ], str(run)))  # fmt: skip
    result = audit(compose_config("audit", [
        f"ckpt_path={best_checkpoint(run)}", f"data.root={data}", "audit.explainers.occlusion=null",
        "audit.masks.v7=false", "audit.masks.segmenter=false", "logger=csv", "audit.sanity=null",
        "audit.bootstrap_resamples=200", "audit.confounders=[view,source]", "print_config=false",
        "data.num_workers=0",
    ], str(tmp_path / "audit")))  # fmt: skip
    images = pd.read_csv(tmp_path / "audit" / "audit" / "images.csv")
    view = result.confounders["view"]
    assert view.auroc == pytest.approx(roc_auc_score(images["label"], images["prob_covid"]))
    assert view.auroc >= 0.75, view.auroc  # the model learned the look
    for s in view.strata:  # AP: 100 COVID, 3 non-COVID; PA: 6, 26
        rows = images[images["view"] == s.value]
        assert (s.n, s.n_positive) == (len(rows), rows["label"].sum())
        assert s.auroc == pytest.approx(roc_auc_score(rows["label"], rows["prob_covid"]))
    assert view.balanced_auroc == pytest.approx(pairs_auroc(images, "view"))
    assert view.balanced_auroc_ci[1] < view.auroc
    calls = images.dropna(subset=["view_probe"])
    assert view.probe.accuracy == pytest.approx((calls["view_probe"] == calls["view"]).mean())
    (finding,) = [f for f in result.flags if "comes largely from the view mix" in f]
    report = (tmp_path / "audit" / "audit" / "report.md").read_text()
    assert f"- {finding}." in report.split("## Findings")[1].split("\n## ")[0]
    print(f"planted view: {finding}; probe {view.probe.accuracy:.3f} against the label alone "
          f"{view.probe.label_only_accuracy:.3f}")  # fmt: skip
