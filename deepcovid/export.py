"""``python -m deepcovid.export ckpt_path=FILE format=safetensors|onnx|torchscript``: write the
model's weights plus a JSON of its record (preprocessing, class names, thresholds, data
fingerprint, provenance) read from the checkpoint, ``NAME.<ext>.json``: one per format, so
formats share a folder; and a model card, ``README.md`` (:mod:`deepcovid.results.model_card`).
An existing export or card is kept unless ``overwrite=true`` (the card of the same checkpoint
is rewritten, listing every format in the folder). See conf/export.yaml."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import MISSING, DictConfig

from deepcovid.models.checkpoints import load_classifier
from deepcovid.models.exported import (
    SUFFIXES,
    ExportFormat,
    metadata_path,
    write_export,
)
from deepcovid.results.model_card import (
    CARD_MARK,
    CARD_NAME,
    card_metadata,
    model_card,
    read_run_files,
)
from deepcovid.utils.choices import checked_choice
from deepcovid.utils.config import CONFIG_PATH
from deepcovid.utils.files import sha256_of, write_text_atomic

log = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    """``conf/export.yaml``'s schema (registered in ``deepcovid.conf``): Hydra checks each key's
    type, and ``format`` against the writers, when it composes the config (the yaml gives the
    values)."""

    paths: Any = MISSING
    task_name: str = MISSING
    ckpt_path: str = MISSING
    format: ExportFormat = MISSING
    output_dir: str = MISSING
    name: str = MISSING
    allow_pickle: bool = MISSING
    overwrite: bool = MISSING
    card: Any = MISSING


def refuse_card(card: Path, checkpoint_sha256: str) -> None:
    """FileExistsError for a ``README.md`` already in the folder, unless it is deepcovid's card
    of this very checkpoint (another format of it is being added)."""
    if not card.exists():
        return
    try:
        ours = card_metadata(card.read_text(encoding="utf-8")).get(CARD_MARK)
    except (ValueError, AttributeError):
        ours = None
    if ours != checkpoint_sha256:
        raise FileExistsError(
            f"{card}: a README.md that is not this checkpoint's model card is already there; "
            "pass overwrite=true to replace it, or another output_dir"
        )


def export(
    ckpt_path: str | Path,
    fmt: str = "safetensors",
    output_dir: str | Path = ".",
    name: str = "model",
    allow_pickle: bool = False,
    overwrite: bool = False,
    card: bool = True,
    license_id: str = "other",
    evaluation_dir: str | Path | None = None,
) -> Path:
    """Write ``output_dir/NAME.<ext>``, ``output_dir/NAME.<ext>.json`` and (``card``)
    ``output_dir/README.md``; return the weights path. An existing export of that name and
    format, or another README.md, is refused unless ``overwrite``. The card reads the
    evaluation in ``evaluation_dir`` (default: the checkpoint's run folder)."""
    fmt = checked_choice("format", fmt, ExportFormat)
    output_dir = Path(output_dir)
    weights = output_dir / f"{name}{SUFFIXES[fmt]}"
    card_path = output_dir / CARD_NAME
    checkpoint_sha256 = sha256_of(ckpt_path)
    if card and not overwrite:
        refuse_card(card_path, checkpoint_sha256)
    model = load_classifier(ckpt_path, allow_pickle=allow_pickle)
    write_export(model.net, model.record, fmt, weights, str(ckpt_path), overwrite)
    log.info("exported %s as %s to %s (+ %s)", ckpt_path, fmt, weights, metadata_path(weights).name)
    if card:
        files = read_run_files(Path(ckpt_path), evaluation_dir)
        exports = [p.name for s in SUFFIXES.values() if (p := output_dir / f"{name}{s}").is_file()]
        text = model_card(
            model.record, Path(ckpt_path), checkpoint_sha256, exports, files, license_id
        )
        write_text_atomic(text, card_path)
        log.info("model card: %s (%s)", card_path, files.evaluation_note)
    return weights


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    export(
        cfg.ckpt_path, cfg.format, cfg.output_dir, cfg.name, cfg.allow_pickle, cfg.overwrite,
        cfg.card.enabled, cfg.card.license, cfg.card.evaluation_dir,
    )  # fmt: skip


if __name__ == "__main__":
    import deepcovid.conf  # noqa: F401  (registers the schemas, also for --config-path DIR)

    main()
