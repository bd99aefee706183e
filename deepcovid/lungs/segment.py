"""``python -m deepcovid.lungs.segment inputs=PATH``: lung masks for chest X-rays (settings in
conf/lungs_segment.yaml).

Inputs are a file, a folder (searched recursively) or a CSV with a ``path`` column (relative
paths resolve against the CSV's folder). Writes one mask PNG per readable image under
``masks/`` (0 background, 255 lung, at the image's resolution), named ``<stem>.png`` so the
folder works as a ``mask_dir`` (inputs sharing a stem get their relative path, ``__``-joined,
instead), and ``lung_masks.csv`` with ``path, lung_mask, lung_area_share, quality_flag``
(``path`` absolute, ``lung_mask`` relative to the CSV, so the CSV reads as a source manifest
of ``deepcovid.lungs.train`` or a mask list). Unreadable inputs are
skipped, logged by name and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig
from PIL import Image

from deepcovid.data.io import UnreadableImageError, load_image
from deepcovid.data.samples import list_inputs
from deepcovid.lungs.quality import QualityLimits
from deepcovid.lungs.segmenter import LungSegmenter, load_segmenter
from deepcovid.lungs.weights import SHIPPED_WEIGHTS
from deepcovid.scope.check import (
    IN_SCOPE_VERDICT,
    NOT_FRONTAL,
    ScopeChecker,
    load_checker,
    scope_flag,
)
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.files import (
    atomic_path,
    common_folder,
    flat_name,
    printable,
    write_csv_atomic,
)
from deepcovid.utils.system import available_cpus

log = logging.getLogger(__name__)
MASK_COLUMNS = ["path", "lung_mask", "lung_area_share", "quality_flag"]
MASKS_DIR = "masks"
TABLE_NAME = "lung_masks.csv"


def mask_names(paths: Sequence[Path]) -> dict[Path, str]:
    """``<stem>.png`` per input; inputs sharing a stem get their path below the inputs' common
    folder, ``__``-joined (``train/a.png`` → ``train__a.png``), and, where a name still
    collides with any other (``a.png`` beside ``a.jpg``), their full flat name with the suffix
    kept (``a.jpg.png``), which :func:`flat_name` makes distinct for distinct inputs."""
    stems = Counter(p.stem for p in paths)
    root = common_folder(list(paths))
    full = {path: f"{flat_name(path, root)}.png" for path in paths}
    names = {
        path: f"{path.stem if stems[path.stem] == 1 else flat_name(path, root, False)}.png"
        for path in paths
    }
    while True:
        taken = Counter(names.values())
        clashes = [p for p, name in names.items() if taken[name] > 1 and name != full[p]]
        if not clashes:
            return names
        names.update((path, full[path]) for path in clashes)


@dataclass(frozen=True)
class SegmentRun:
    """What :func:`segment_files` produced: the table and the inputs it skipped."""

    table: pd.DataFrame
    skipped: list[Path]


def write_mask(mask: np.ndarray, path: Path) -> None:
    with atomic_path(path) as partial:
        Image.fromarray(mask.astype(np.uint8) * 255).save(partial, format="PNG")


def segment_files(
    segmenter: LungSegmenter,
    paths: Sequence[Path],
    out: Path,
    batch_size: int = 8,
    scope: ScopeChecker | None = None,
) -> SegmentRun:
    """Masks of the readable ``paths`` written under ``out/masks``; the table and the skips.
    With ``scope``, an image that is not a frontal chest radiograph has "not a frontal chest
    radiograph: <why>" in its quality flag. An error when no input is readable."""
    names = mask_names(paths)
    rows, skipped = [], []
    for start in range(0, len(paths), batch_size):
        kept, images = [], []
        for path in paths[start : start + batch_size]:
            try:
                images.append(load_image(path))
                kept.append(path)
            except UnreadableImageError as error:
                log.warning("skipped: %s", error)
                skipped.append(path)
        if not kept:
            continue
        verdicts = scope.check_paths(kept)[0] if scope is not None else {}
        for path, result in zip(kept, segmenter.segment_batch(images), strict=True):
            relative = Path(MASKS_DIR) / names[path]
            write_mask(result.mask, out / relative)
            quality = result.quality
            rows.append(
                (
                    printable(path.resolve()),
                    str(relative),
                    quality.lung_area_share,
                    scope_flag(quality.quality_flag, verdicts.get(path, IN_SCOPE_VERDICT).reason),
                )
            )
    if not rows:
        raise ValueError(f"none of the {len(paths)} inputs could be read; see the log")
    return SegmentRun(pd.DataFrame(rows, columns=MASK_COLUMNS), skipped)


def segment(cfg: DictConfig) -> SegmentRun:
    """Run the configured segmentation and write ``lung_masks.csv``."""
    torch.set_num_threads(max(1, min(int(cfg.threads), available_cpus())))
    weights = cfg.weights if cfg.weights is not None else SHIPPED_WEIGHTS
    segmenter = load_segmenter(weights, cfg.device, QualityLimits(**cfg.quality))
    paths = list_inputs(cfg.inputs)
    out = Path(cfg.output_dir)
    scope = load_checker() if cfg.scope_check else None
    run = segment_files(segmenter, paths, out, cfg.batch_size, scope)
    table_path = write_csv_atomic(run.table, out / TABLE_NAME)
    flagged = int((run.table["quality_flag"] != "").sum())
    outside = run.table[run.table["quality_flag"].str.startswith(NOT_FRONTAL)]
    if len(outside):
        log.warning(
            "%d input(s) are not frontal chest radiographs (flagged):\n%s",
            len(outside),
            "\n".join(f"  {row.path}: {row.quality_flag}" for row in outside.itertuples()),
        )
    log.info(
        "%d masks written to %s (%d flagged); %d of %d inputs skipped as unreadable",
        len(run.table),
        table_path,
        flagged,
        len(run.skipped),
        len(paths),
    )
    return run


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="lungs_segment")
def main(cfg: DictConfig) -> None:
    segment(cfg)


if __name__ == "__main__":
    main()
