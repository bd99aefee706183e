"""Quality flags for implausible lung masks."""

from __future__ import annotations

import numpy as np
import pytest

from deepcovid.lungs.quality import QualityLimits, assess
from deepcovid.utils.config import compose_config


def lungs(left_width: int = 12, right_width: int = 14, height: int = 60) -> np.ndarray:
    mask = np.zeros((100, 100), dtype=bool)
    mask[20 : 20 + height, 20 : 20 + right_width * 2] = True
    mask[20 : 20 + height, 60 : 60 + left_width * 2] = True
    return mask


def test_plausible_mask_has_no_flag() -> None:
    quality = assess(lungs())
    assert quality.quality_flag == ""
    assert quality.lung_area_share == pytest.approx(0.312)
    assert quality.n_regions == 2 and quality.side_ratio == pytest.approx(12 / 14)


def test_area_out_of_range() -> None:
    assert "lung area share 0.10 outside 0.15-0.65" in assess(lungs(5, 5, 50)).quality_flag
    full = np.ones((10, 10), dtype=bool)
    full[:, 5] = False
    assert "outside" in assess(full).quality_flag


def test_fragments_counted_before_cleanup() -> None:
    mask = lungs()
    raw = mask.copy()
    raw[85:95, 85:95] = True  # a 1 % fragment the cleanup removed
    assert assess(mask).quality_flag == ""
    assert "3 lung regions before cleanup" in assess(mask, raw).quality_flag
    raw_speck = mask.copy()
    raw_speck[90:92, 90:92] = True  # 0.04 %: a speck, not a region
    assert assess(mask, raw_speck).quality_flag == ""


def test_imbalance_one_region_and_empty() -> None:
    assert "left/right imbalance (smaller lung 0.29" in assess(lungs(4, 14)).quality_flag
    one = lungs()
    one[:, 60:] = False
    assert "one lung region only" in assess(one).quality_flag
    empty = assess(np.zeros((10, 10), dtype=bool))
    assert empty.quality_flag == "no lung found" and empty.lung_area_share == 0.0


def test_segment_config_uses_the_default_limits() -> None:
    cfg = compose_config("lungs_segment", ["inputs=x"])
    assert QualityLimits(**cfg.quality) == QualityLimits()
