"""Plausibility checks of a lung mask: area, fragments, left/right balance.

The default limits come from the 435 non-empty V7 Labs masks (see MODEL_CARD.md): their lung
area share spans 0.09–0.62 (1st–99th percentile 0.20–0.56), every one has exactly two regions
of at least 0.5 % of the image, and the smaller lung is at least 0.58 × the larger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepcovid.lungs.postprocess import N_LUNGS, region_sizes


@dataclass(frozen=True)
class QualityLimits:
    """What counts as a plausible frontal lung mask."""

    min_area_share: float = 0.15
    max_area_share: float = 0.65
    min_region_share: float = 0.005  # smaller fragments are specks, not counted as regions
    min_side_ratio: float = 0.5  # smaller lung's area / larger lung's


DEFAULT_LIMITS = QualityLimits()


@dataclass(frozen=True)
class MaskQuality:
    """A mask's lung area share, its region count and side ratio, and why it looks wrong
    (``quality_flag``: ``"; "``-joined reasons, empty when plausible)."""

    lung_area_share: float
    n_regions: int
    side_ratio: float
    quality_flag: str


def side_ratio(mask: np.ndarray) -> float:
    """Area of the second-largest region over the largest's (0 with fewer than two)."""
    _, sizes = region_sizes(mask)
    if sizes.size < N_LUNGS:
        return 0.0
    largest, second = np.sort(sizes)[::-1][:N_LUNGS]
    return float(second / largest)


def assess(
    mask: np.ndarray, raw_mask: np.ndarray | None = None, limits: QualityLimits = DEFAULT_LIMITS
) -> MaskQuality:
    """Quality of ``mask``; region fragments are counted on ``raw_mask`` (the mask before
    cleanup) when given, else on ``mask`` itself."""
    share = float(mask.mean()) if mask.size else 0.0
    _, raw_sizes = region_sizes(mask if raw_mask is None else raw_mask)
    n_regions = int((raw_sizes >= limits.min_region_share * mask.size).sum())
    ratio = side_ratio(mask)
    reasons = []
    if not mask.any():
        reasons.append("no lung found")
    elif share < limits.min_area_share or share > limits.max_area_share:
        reasons.append(
            f"lung area share {share:.2f} outside "
            f"{limits.min_area_share:.2f}-{limits.max_area_share:.2f}"
        )
    if n_regions > N_LUNGS:
        reasons.append(f"{n_regions} lung regions before cleanup (expected 2)")
    if mask.any() and ratio == 0.0:
        reasons.append("one lung region only (merged or missing lung)")
    elif 0.0 < ratio < limits.min_side_ratio:
        reasons.append(f"left/right imbalance (smaller lung {ratio:.2f} x the larger)")
    return MaskQuality(share, n_regions, ratio, "; ".join(reasons))
