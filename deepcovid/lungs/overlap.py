"""Held-out evaluation of lung masks: Dice and HD95 per image, patient-bootstrap intervals of
their means per source.

Scores are computed at each image's own resolution. Pixels of V7's "Ignore" class (devices and
markup over the lungs, where no lung boundary was drawn) are left out of both masks. HD95 is
the symmetric 95th-percentile Hausdorff distance between the two masks' boundaries: ``hd95_px``
in pixels of the image it was computed on (cxr-dev images have a 256-px short side; cxr-fullres
images are the originals, up to 4280 px), ``hd95_px256`` the same distance scaled to a 256-px
short side, comparable across resolutions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from torchmetrics.functional.segmentation import dice_score

from deepcovid.lungs.labelled import LabelledImage
from deepcovid.lungs.segmenter import LungSegmenter
from deepcovid.metrics.bootstrap import Clusters, mean_interval
from deepcovid.utils.files import printable

REFERENCE_SHORT_SIDE = 256  # pixels: hd95_px256 is HD95 as if the image's short side were this
SCORE_COLUMNS = [
    "path",
    "source",
    "patient_id",
    "width",
    "height",
    "dice",
    "hd95_px",
    "hd95_px256",
    "lung_area_share",
    "quality_flag",
]


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of two bool masks (torchmetrics); 0 when the prediction is empty."""
    classes = [torch.from_numpy(m.astype(np.int64))[None] for m in (prediction, truth)]
    value = dice_score(*classes, num_classes=2, include_background=False, input_format="index")
    return float(torch.nan_to_num(value, nan=0.0))


def boundary(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels that touch the background (8-neighbourhood)."""
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3)), border_value=0)


def hd95(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Symmetric 95th-percentile Hausdorff distance between the boundaries of two bool masks,
    in pixels: the larger of the two directed 95th percentiles. NaN when either is empty."""
    edges = boundary(prediction), boundary(truth)
    if not (edges[0].any() and edges[1].any()):
        return float("nan")
    to_truth = ndimage.distance_transform_edt(~edges[1])[edges[0]]
    to_prediction = ndimage.distance_transform_edt(~edges[0])[edges[1]]
    return float(max(np.percentile(to_truth, 95), np.percentile(to_prediction, 95)))


def score(prediction: np.ndarray, item: LabelledImage) -> tuple[float, float]:
    """``(dice, hd95_px)`` of ``prediction`` against ``item``'s mask, its ignored pixels left
    out of both."""
    kept = prediction & ~item.ignore
    return dice(kept, item.lung), hd95(kept, item.lung)


def score_segmenter(
    segmenter: LungSegmenter, items: Iterable[LabelledImage]
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-image scores of ``segmenter`` on ``items``, and each prediction by path (for
    figures)."""
    rows, predictions = [], {}
    for item in items:
        result = segmenter.segment(item.image)
        value, distance = score(result.mask, item)
        rows.append(
            {
                "path": printable(item.record.path),
                "source": item.record.source,
                "patient_id": item.record.patient_id,
                "width": item.image.width,
                "height": item.image.height,
                "dice": value,
                "hd95_px": distance,
                "hd95_px256": distance * REFERENCE_SHORT_SIDE / min(item.image.size),
                "lung_area_share": result.quality.lung_area_share,
                "quality_flag": result.quality.quality_flag,
            }
        )
        predictions[printable(item.record.path)] = result.mask
    return pd.DataFrame(rows, columns=SCORE_COLUMNS), predictions


@dataclass(frozen=True)
class MeanWithInterval:
    """A mean over images with its patient-bootstrap percentile interval (None with fewer
    than two patients: no resampling to speak of; the mean is None without images)."""

    mean: float | None
    low: float | None
    high: float | None
    n_images: int
    n_patients: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def mean_with_interval(
    values: np.ndarray,
    patient_id: np.ndarray | pd.Series,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MeanWithInterval:
    """The mean of ``values`` and its percentile interval over resamples of patients
    (:func:`deepcovid.metrics.bootstrap.mean_interval`: each draw keeps all of a patient's
    images)."""
    values = np.asarray(values, dtype=np.float64)
    n_patients = len(Clusters(patient_id, len(values)))
    mean = float(values.mean()) if len(values) else None
    if n_patients < 2:
        return MeanWithInterval(mean, None, None, len(values), n_patients)
    drawn = mean_interval(values, patient_id, n_resamples, confidence, seed)
    return MeanWithInterval(mean, drawn.low, drawn.high, len(values), n_patients)


def summarize(
    scores: pd.DataFrame, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, dict]:
    """Per source (and ``all``): mean Dice and mean HD95 with intervals, and how many
    predictions were flagged. HD95 is averaged over the images where it exists (not an empty
    prediction); its ``n_images`` says over how many. Images without a patient id count as
    their own patient."""
    groups = {"all": scores, **{str(k): g for k, g in scores.groupby("source", sort=False)}}
    summary = {}
    for name, group in groups.items():
        entry: dict = {}
        for column in ("dice", "hd95_px", "hd95_px256"):
            valid = group[np.isfinite(group[column])]
            patients = valid["patient_id"].replace("", np.nan).to_numpy()
            entry[column] = mean_with_interval(
                valid[column].to_numpy(), patients, n_resamples, confidence, seed
            ).to_dict()
        entry["n_flagged"] = int((group["quality_flag"] != "").sum())
        summary[name] = entry
    return summary
