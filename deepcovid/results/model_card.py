"""The exported classifier's model card: a ``README.md`` in the Hugging Face format (YAML front
matter with ``model-index`` metrics, then Markdown), written by ``python -m deepcovid.export``
beside the weights.

Everything in it comes from the checkpoint's record, its training run's ``data_check.json`` and
the evaluation's files (``metrics/test.json``, ``data_check.json``, ``audit/audit.json`` of the
run folder, or of another evaluation folder); what is absent is said to be absent ("not
evaluated"), never filled in. An evaluation of other weights than the exported ones
(``metrics/test.json`` of ``best-…`` when ``last.ckpt`` is exported) is not used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deepcovid import CLASS_TITLES
from deepcovid.metrics.operating_points import OperatingPoint
from deepcovid.metrics.summary import Evaluation
from deepcovid.models.record import ModelRecord
from deepcovid.results.evaluation import read_evaluation

CARD_NAME = "README.md"
CARD_MARK = "deepcovid_checkpoint_sha256"  # front-matter key: the card's source checkpoint
NOT_EVALUATED = "not evaluated"
TASK = {"type": "image-classification", "name": "COVID-19 vs non-COVID chest radiograph"}


@dataclass(frozen=True)
class RunFiles:
    """What the training run and the evaluation folder hold about a checkpoint (None: absent,
    with the reason)."""

    run: Path
    folder: Path  # of the evaluation (the run folder unless another is given)
    evaluation: Evaluation | None
    evaluation_note: str
    data_check: dict[str, Any] | None  # the training run's
    evaluated_data_check: dict[str, Any] | None  # the evaluation's
    audit: dict[str, Any] | None


def run_folder(checkpoint: Path) -> Path:
    """The run folder of ``RUN/checkpoints/NAME.ckpt`` (else the checkpoint's own folder)."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_run_files(checkpoint: Path, folder: Path | None = None) -> RunFiles:
    """The training run's data check; the evaluation (of these very weights only), its data
    check and audit from ``folder`` (default: the run folder)."""
    run = run_folder(checkpoint)
    folder = run if folder is None else Path(folder)
    metrics = folder / "metrics" / "test.json"
    evaluation, note = None, f"{NOT_EVALUATED}: {metrics} is absent"
    if metrics.is_file():
        found = read_evaluation(folder, "test")
        evaluated = found.model.checkpoint
        if evaluated is not None and Path(evaluated).resolve() != checkpoint.resolve():
            note = f"{NOT_EVALUATED}: {metrics} evaluated {evaluated}, not these weights"
        else:
            evaluation, note = found, str(metrics)
    return RunFiles(
        run, folder, evaluation, note, read_json(run / "data_check.json"),
        read_json(folder / "data_check.json"), read_json(folder / "audit" / "audit.json"),
    )  # fmt: skip


def metric(kind: str, name: str, value: float | None, interval: Any = None, **config: Any) -> dict:
    """One model-index metric; its interval (and how it was made) under ``args``."""
    entry: dict[str, Any] = {"type": kind, "name": name, "value": value}
    if config:
        entry["config"] = ", ".join(f"{k}={v}" for k, v in config.items())
    if interval is not None:
        entry["args"] = interval
    return entry


def point_metrics(point: OperatingPoint, confidence: float) -> list[dict[str, Any]]:
    where = {"threshold": point.threshold, "operating_point": point.name}
    return [
        metric(
            kind,
            f"{kind.capitalize()} ({point.name})",
            getattr(point, kind),
            {
                "interval": list(getattr(point, f"{kind}_ci")),
                "confidence": confidence,
                "method": point.interval,
            },
            **where,
        )
        for kind in ("sensitivity", "specificity")
    ]


def bootstrap_method(evaluation: Evaluation) -> str:
    """How the AUROC and AP intervals were made, in words."""
    boot = evaluation.bootstrap
    return f"percentile bootstrap over {boot.unit}s, {boot.n_resamples} resamples"


def index_metrics(evaluation: Evaluation) -> list[dict[str, Any]]:
    """The test split's headline metrics with their intervals, as ``metrics/test.json`` has
    them: AUROC, AP, Brier, ECE, and sensitivity/specificity at each operating point."""
    boot = {"confidence": evaluation.confidence, "method": bootstrap_method(evaluation)}
    auroc_ci = {"interval": list(evaluation.auroc_ci)} | boot
    ap_ci = {"interval": list(evaluation.average_precision_ci)} | boot
    brier = evaluation.calibration.brier
    brier_ci = None
    if brier is not None:
        brier_ci = {"interval": [brier.low, brier.high], "confidence": brier.confidence,
                    "method": brier.method}  # fmt: skip
    metrics = [
        metric("roc_auc", "AUROC", evaluation.auroc, auroc_ci),
        metric("average_precision", "Average precision", evaluation.average_precision, ap_ci),
        metric("brier_score", "Brier score", None if brier is None else brier.value, brier_ci),
        metric(
            "ece",
            "Expected calibration error",
            evaluation.calibration.ece,
            n_bins=evaluation.calibration.n_bins,
        ),  # fmt: skip
    ]
    for point in [evaluation.point_at(evaluation.threshold), *evaluation.chosen_points]:
        if point.threshold is not None:
            metrics += point_metrics(point, evaluation.confidence)
    return metrics


def sources_in(data_check: dict[str, Any] | None, splits: tuple[str, ...]) -> list[str]:
    """The sources a ``data_check.json`` counts in ``splits``."""
    counts = (data_check or {}).get("counts", [])
    return sorted({row["source"] for row in counts
                   if row["split"] in splits and row.get("source") not in (None, "-")})  # fmt: skip


def sources_of(files: RunFiles, record: ModelRecord) -> list[str]:
    """The training data's sources as its ``data_check.json`` counts them, else the data
    folder's name."""
    sources = sources_in(files.data_check, ("train", "val"))
    if sources:
        return sources
    return [Path(record.data.root).name] if record.data else []


def front_matter(record: ModelRecord, files: RunFiles, license_id: str, sha: str) -> dict:
    matter: dict[str, Any] = {
        "license": license_id,
        "library_name": "deepcovid",
        "pipeline_tag": "image-classification",
        "tags": ["medical-imaging", "chest-x-ray", "covid-19", "radiology", record.backbone],
        "datasets": sources_of(files, record),
    }
    if files.evaluation is not None:
        evaluation = files.evaluation
        tested = sources_in(files.evaluated_data_check, (evaluation.split,)) or matter["datasets"]
        dataset = {"name": ", ".join(tested) or "unnamed", "type": "chest-x-ray",
                   "split": evaluation.split}  # fmt: skip
        results = [{"task": TASK, "dataset": dataset, "metrics": index_metrics(evaluation)}]
        matter["model-index"] = [{"name": f"deepcovid-{record.backbone}", "results": results}]
    matter[CARD_MARK] = sha
    return matter


def card_metadata(text: str) -> dict[str, Any]:
    """The YAML front matter of a model card (``---`` … ``---``)."""
    if not text.startswith("---\n"):
        raise ValueError("a model card starts with a '---' line of YAML front matter")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def interval_text(interval: Any) -> str:
    low, high = (list(interval) + [None, None])[:2]
    return "" if low is None else f" ({fmt(low)}–{fmt(high)})"


def training_section(record: ModelRecord, files: RunFiles) -> list[str]:
    lines = ["## Training data", ""]
    data = record.data
    if data is None:
        lines.append("The checkpoint records no data.")
    else:
        split = data.split
        folds = f", fold {split.fold} of {split.num_folds}" if split.num_folds else ""
        lines += [
            f"- data folder `{data.root}` (manifest: {data.manifest or 'none'}), {data.n_images} "
            f"images, fingerprint `{data.fingerprint[:16]}…`",
            f"- splits: seed {split.seed}, val fraction {split.val_fraction}, test fraction "
            f"{split.test_fraction}{folds}; origin: "
            + ", ".join(f"{k}: {v}" for k, v in data.split_origin.items()),
            f"- class balance in training: {data.balance or 'none'}; COVID share drawn "
            f"{fmt(data.training_prevalence)}",
        ]
        if split.holdout_source:
            lines.append(f"- held-out source: {split.holdout_source}")
    pretrained = ", ".join(record.pretrained_on) or "none recorded"
    lines.append(f"- starting weights trained on: {pretrained}")
    if record.weights_file is not None:
        lines.append(f"- starting weights file: sha256 `{record.weights_file.sha256}`")
    counts = (files.data_check or {}).get("counts")
    if counts:
        where = files.run / "data_check.json"
        lines += ["", f"Images per split, class and source (`{where}`):", "",
                  "| split | class | source | images |", "|---|---|---|---|"]  # fmt: skip
        lines += [
            f"| {r['split']} | {r['class']} | {r['source']} | {r['images']} |" for r in counts
        ]
    else:
        lines.append(f"- per-split counts: `{files.run / 'data_check.json'}` is absent")
    return lines


def evaluation_section(files: RunFiles) -> list[str]:
    lines = ["## Evaluation", ""]
    evaluation = files.evaluation
    if evaluation is None:
        return [*lines, files.evaluation_note[0].upper() + files.evaluation_note[1:] + "."]
    counts = evaluation.counts
    level = f"{evaluation.confidence:.0%}"
    lines += [
        f"From `{files.evaluation_note}` ({evaluation.mode}): {counts.n} {evaluation.split} "
        f"images, {counts.n_positive} COVID and {counts.n_negative} non-COVID.",
        "",
        f"- AUROC {fmt(evaluation.auroc)}{interval_text(evaluation.auroc_ci)}, average precision "
        f"{fmt(evaluation.average_precision)}{interval_text(evaluation.average_precision_ci)} "
        f"({level} intervals: {bootstrap_method(evaluation)})",
        "",
        "| operating point | threshold | sensitivity | specificity |",
        "|---|---|---|---|",
    ]
    for point in [evaluation.point_at(evaluation.threshold), *evaluation.chosen_points]:
        name = "default" if point.name == "fixed" else f"{point.name} (chosen on {point.chosen_on})"
        if point.threshold is None:
            reason = next(iter(point.undefined.values()), "no threshold")
            lines.append(f"| {name} | none: {reason} | n/a | n/a |")
            continue
        lines.append(
            f"| {name} | {fmt(point.threshold, 4)} | {fmt(point.sensitivity)}"
            f"{interval_text(point.sensitivity_ci)} | {fmt(point.specificity)}"
            f"{interval_text(point.specificity_ci)} |"
        )
    return lines


def calibration_section(files: RunFiles) -> list[str]:
    lines = ["## Calibration", ""]
    if files.evaluation is None:
        return [*lines, f"Not assessed: {files.evaluation_note}."]
    calibration = files.evaluation.calibration

    def estimate(name: str, value: Any) -> str:
        if value is None:
            return f"- {name}: n/a ({files.evaluation.undefined.get(name.lower(), 'undefined')})"
        return f"- {name}: {fmt(value.value)} ({fmt(value.low)}–{fmt(value.high)}, {value.method})"

    return [
        *lines,
        f"- expected calibration error: {fmt(calibration.ece)} ({calibration.n_bins} bins)",
        estimate("Brier score", calibration.brier),
        estimate("Intercept", calibration.intercept),
        estimate("Slope", calibration.slope),
    ]


def audit_section(files: RunFiles) -> list[str]:
    lines = ["## Shortcut audit", ""]
    if files.audit is None:
        return [*lines, f"Not audited: `{files.folder / 'audit' / 'audit.json'}` is absent."]
    flags = files.audit.get("flags") or ["no finding"]
    return [*lines, f"From `{files.folder / 'audit' / 'audit.json'}`:", "",
            *[f"- {flag}" for flag in flags]]  # fmt: skip


def model_card(
    record: ModelRecord,
    checkpoint: Path,
    checkpoint_sha256: str,
    exports: list[str],
    files: RunFiles,
    license_id: str = "other",
) -> str:
    """The card's text (front matter and body)."""
    matter = front_matter(record, files, license_id, checkpoint_sha256)
    prep = record.preprocessing
    classes = ", ".join(f"{i}: {n}" for i, n in enumerate(record.class_names))
    points = (
        ", ".join(
            f"{rule} {fmt(p['threshold'], 4)}" if p["threshold"] is not None else f"{rule} none"
            for rule, p in record.operating_points.items()
        )
        or "none recorded"
    )
    weights = exports[0] if exports else "model.safetensors"
    evaluation = files.evaluation
    notes = [] if evaluation is None else evaluation.notes
    body = [
        f"# deepcovid {record.backbone}: {CLASS_TITLES[1]} vs {CLASS_TITLES[0]} chest radiographs",
        "",
        f"A {record.backbone} classifier giving P(COVID) for a frontal chest radiograph, "
        f"trained with deepcovid {record.deepcovid_version}. Files: "
        + ", ".join(f"`{name}`" for name in exports)
        + ".",
        "",
        "## Intended use",
        "",
        "Research on COVID-19 detection from frontal (PA/AP) chest radiographs: reproducing, "
        "comparing and auditing classifiers. Not a medical device; not for diagnosis.",
        "",
        "## Out-of-scope use",
        "",
        "- Images other than frontal chest radiographs (lateral views, CT, other body parts, "
        "photographs): `python -m deepcovid.predict` refuses them by its scope check "
        "(`out_of_scope=skip`) and the DICOM SR says 'not assessed'.",
        "- Clinical decisions, and populations or sites unlike the training data below.",
        "",
        *training_section(record, files),
        "",
        *evaluation_section(files),
        "",
        *calibration_section(files),
        "",
        *audit_section(files),
        "",
        "## Limitations",
        "",
        "- Evaluated only as stated above; no prospective or external validation is recorded "
        "here unless it appears under Evaluation.",
        *[f"- {note}" for note in notes],
        "",
        "## How to run it",
        "",
        f"Input: {prep.channels}×{prep.image_size}×{prep.image_size}, {prep.steps}. Classes "
        f"{classes}; default threshold {record.threshold:g}; thresholds chosen on val: {points}.",
        "",
        "```bash",
        f"python -m deepcovid.predict ckpt_path={weights} inputs=FOLDER",
        "```",
        "",
        "```python",
        "from deepcovid.data.io import load_image",
        "from deepcovid.models.exported import load_exported",
        f'model = load_exported("{weights}")  # the file alone: the record is in its header',
        'p_covid = model.prob_covid(model.eval_transform(load_image("x.png"))[None])',
        "```",
        "",
        "## Provenance",
        "",
        f"- source checkpoint `{checkpoint}`, sha256 `{checkpoint_sha256}`",
        f"- run folder `{files.run}`; evaluation folder `{files.folder}`",
        f"- training precision {record.training_precision or 'not recorded'}; tracking "
        + (", ".join(f"{k}={v}" for k, v in record.tracking.items() if v) or "none recorded"),
        "",
    ]
    dumped = yaml.safe_dump(matter, sort_keys=False, allow_unicode=True)
    return f"---\n{dumped}---\n\n" + "\n".join(body)
