"""An audit whose masks were all refused says so, how many and why: not "none given"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from deepcovid.audit import audit
from deepcovid.utils.config import compose_config
from tests.conftest import best_checkpoint
from tests.test_audit import FAST, QUIET


def test_masks_refused_for_their_aspect_are_counted_with_the_reason(
    tiny_run: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    for image in covidx5k_shared.rglob("*.*"):  # 64 x 16 masks for 64 x 64 images
        Image.fromarray(np.full((16, 64), 255, np.uint8)).save(masks / f"{image.stem}.png")
    overrides = [
        f"ckpt_path={best_checkpoint(tiny_run)}", f"data.root={covidx5k_shared}",
        f"data.lung_masks={masks}", "audit.masks.v7=false", "audit.masks.segmenter=false",
        "audit.sanity=null", *QUIET, *FAST,
    ]  # fmt: skip
    result = audit(compose_config("audit", overrides, str(tmp_path)))
    reason = result.skipped["ablation"]
    assert "none given" not in reason
    assert "the masks of 14 of 14 images were given but refused" in reason
    assert "aspect ratios differ" in reason and "mask_problem in images.csv" in reason
    images = pd.read_csv(tmp_path / "audit" / "images.csv")
    assert (images["mask_source"] == "refused").all()
    assert images["mask_problem"].str.contains("aspect ratios differ").all()
    assert "were given but refused" in (tmp_path / "audit" / "report.md").read_text()
