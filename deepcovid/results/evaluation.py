"""The one evaluation path: test predictions (+ the val predictions that choose the operating
points) → :class:`~deepcovid.metrics.summary.Evaluation` → the run's files and its loggers.

Used by the final test of ``python -m deepcovid.train`` and by ``python -m deepcovid.evaluate``
alike (both through :class:`deepcovid.callbacks.evaluation.EvaluationWriter`). Writes, under the
output directory: ``predictions/<split>.csv`` (and ``predictions/val.csv``, the predictions the
thresholds were chosen on), ``metrics/<split>.json``, ``plots/*.png`` and ``report.md``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepcovid.data.splits import MIN_VAL_PER_CLASS, DataRecord
from deepcovid.metrics.summary import Evaluation, MetricSettings, ModelInfo, summarize
from deepcovid.results.figures import evaluation_figures
from deepcovid.results.markdown import percent, results_section
from deepcovid.results.pretraining import overlap_note
from deepcovid.utils.files import (
    save_figure,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)

log = logging.getLogger(__name__)
OVERSAMPLING_SHIFT = 1.5  # training prevalence this many times the test's: say so in report.md


@dataclass(frozen=True)
class ValPredictions:
    """The val predictions the operating points' thresholds are chosen on, what they are (for
    the report), how the points are labelled, and why there are none (when ``frame`` is None).
    """

    frame: pd.DataFrame | None
    source: str
    chosen_on: str = "val"
    reason: str = ""


def notes_for(
    test: pd.DataFrame,
    val: pd.DataFrame | None,
    data: DataRecord | None,
    model: ModelInfo,
    split: str,
) -> list[str]:
    """Warnings a reader must see next to the numbers: evaluated images that may be in the
    pretraining corpora, a training prevalence far from the test's (over-sampling shifts
    calibration), a small val split."""
    notes = []
    sources = test["source"].dropna().unique() if "source" in test else ()
    seen = overlap_note(model.pretrained_on, sources, split)
    if seen is not None:
        log.warning(seen)
        notes.append(seen)
    test_prevalence = test["label"].mean() if len(test) else None
    trained = None if data is None else data.training_prevalence
    if (
        trained
        and test_prevalence
        and max(trained, test_prevalence) > OVERSAMPLING_SHIFT * min(trained, test_prevalence)
    ):
        how = "over-sampling" if data.balance == "oversample" else "its data"
        direction = "upwards" if trained > test_prevalence else "downwards"
        notes.append(
            f"The model was trained at a COVID prevalence of {percent(trained)} ({how}), "
            f"{trained / test_prevalence:.2f}× the {percent(test_prevalence)} of this split: "
            f"its P(COVID) is shifted {direction}, and the calibration error and reliability "
            "diagram mostly show that prior shift. Thresholds chosen on val still transfer; "
            "the raw probabilities do not."
        )
    if val is not None:
        positives = int(val["label"].sum())
        negatives = len(val) - positives
        if min(positives, negatives) < MIN_VAL_PER_CLASS:
            notes.append(
                f"The val split that chose the thresholds (and, in training, the checkpoint) "
                f"holds {positives} COVID and {negatives} non-COVID images: the operating "
                "points rest on that few."
            )
    return notes


def evaluate_predictions(
    test: pd.DataFrame,
    val_predictions: ValPredictions,
    settings: MetricSettings,
    threshold: float,
    model: ModelInfo,
    split: str = "test",
    precision: str = "32-true",
    skipped: dict[str, str] | None = None,
    data: DataRecord | None = None,
    mode: str = "the training data",
) -> Evaluation:
    """The evaluation of ``test`` (a predictions frame, see
    :func:`deepcovid.metrics.predictions.predictions_frame`)."""
    # float64 throughout: the CSVs then round-trip exactly, so a recomputation from them
    # reproduces every count, even for a score equal to a threshold chosen on val
    test = test.astype({"prob_covid": "float64"})
    val = val_predictions.frame
    val = None if val is None else val.astype({"prob_covid": "float64"})
    return summarize(
        test,
        val,
        settings,
        threshold,
        model,
        split=split,
        chosen_on=val_predictions.chosen_on,
        val_source=val_predictions.source,
        val_reason=val_predictions.reason,
        precision=precision,
        skipped=skipped,
        notes=notes_for(test, val, data, model, split),
        mode=mode,
    )


def write_evaluation(
    evaluation: Evaluation,
    test: pd.DataFrame,
    val: pd.DataFrame | None,
    output_dir: str | Path,
) -> dict[str, Path]:
    """Write the evaluation's files under ``output_dir``; return them by kind."""
    output_dir = Path(output_dir)
    split = evaluation.split
    written = {"predictions": write_csv_atomic(test, output_dir / "predictions" / f"{split}.csv")}
    if val is not None and split != "val":
        written["val_predictions"] = write_csv_atomic(val, output_dir / "predictions" / "val.csv")
    written["metrics"] = write_json_atomic(
        evaluation.to_json(), output_dir / "metrics" / f"{split}.json"
    )
    for name, figure in evaluation_figures(evaluation, test).items():
        written[f"plot:{name}"] = save_figure(figure, output_dir / "plots" / f"{name}.png")
    written["report"] = write_text_atomic(results_section(evaluation), output_dir / "report.md")
    log.info("wrote the %s evaluation to %s", split, written["report"])
    return written


def read_evaluation(run_dir: str | Path, split: str = "test") -> Evaluation:
    """The evaluation a run directory holds (``metrics/<split>.json``)."""
    path = Path(run_dir) / "metrics" / f"{split}.json"
    return Evaluation.from_json(json.loads(path.read_text(encoding="utf-8")))
