"""Fill the reporting checklist (:mod:`deepcovid.results.checklist`) from what runs recorded,
each answer citing the files it comes from, and write ``checklist.md``.

A run folder gives: ``metrics/<split>.json`` (the evaluation), ``data_check.json``,
``table1.csv`` / ``table1.md``, the config (``.hydra/config.yaml``, else a logger's
``hparams.yaml``), the evaluated checkpoint's record (and its sha256), ``audit/audit.json`` when
an audit ran, and the data's manifest (licences). What none of them says is left "for the
author to complete".
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import os
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from deepcovid.metrics.summary import Evaluation
from deepcovid.models.checkpoints import read_record
from deepcovid.models.record import ModelRecord
from deepcovid.results.checklist import ITEMS, NUMBERING, ChecklistItem
from deepcovid.results.evaluation import read_evaluation
from deepcovid.results.markdown import (
    ci_label,
    discrimination_sentence,
    estimate_text,
    number,
    percent,
    sentence_for,
)
from deepcovid.results.names import INTERVAL_NAMES, rule_name
from deepcovid.results.table1 import ALL, read_table_one
from deepcovid.utils.files import sha256_of, write_text_atomic

log = logging.getLogger(__name__)
FOR_AUTHOR = "*For the author to complete.*"
PACKAGES = ("torch", "torchvision", "lightning", "timm", "torchmetrics", "deepcovid")
# Config keys that describe training (``.hydra/config.yaml`` or a logger's hparams.yaml)
TRAINING_KEYS = (
    "seed", "trainer.max_epochs", "trainer.precision", "trainer.accumulate_grad_batches",
    "data.batch_size", "data.image_size", "data.balance", "data.oversample_factor",
    "model.finetune", "model.optimizer._target_", "model.optimizer.lr",
    "model.optimizer.weight_decay", "model.scheduler._target_", "model.frozen_batchnorm",
    "data.augmentation.crop_scale", "data.augmentation.hflip_prob",
    "data.augmentation.rotation_degrees", "monitor",
)  # fmt: skip
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when built with it
INPUT_KEYS = ("data.on_bad_file", "data.out_of_scope", "data.on_leak", "data.near_duplicates")


@dataclass(frozen=True)
class Answer:
    """What a run says for one topic, and the files (relative to the run folder) it is from."""

    text: str
    sources: tuple[str, ...]


@dataclass
class RunFiles:
    """The files of one evaluated run folder that the checklist reads."""

    folder: Path
    split: str
    evaluation: Evaluation
    data_check: dict[str, Any] | None = None
    table1: pd.DataFrame | None = None
    config: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    record: ModelRecord | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    audit: dict[str, Any] | None = None
    manifest: pd.DataFrame | None = None
    manifest_file: str | None = None
    table1_groups: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)

    def cite(self, path: str | Path) -> str:
        """A path as cited: relative to the run folder when inside it."""
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.folder.resolve()))
        except ValueError:
            return str(path)


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one mapping of dotted keys."""
    if not isinstance(values, dict):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat |= (
            flatten(value, f"{prefix}{key}.")
            if isinstance(value, dict)
            else {f"{prefix}{key}": value}
        )
    return flat


def read_config(folder: Path) -> tuple[dict[str, Any], str | None]:
    """The run's config as dotted keys: Hydra's ``.hydra/config.yaml``, else the first logger
    ``hparams.yaml`` (deepcovid logs the whole config there)."""
    candidates = [folder / ".hydra" / "config.yaml", *sorted(folder.glob("**/hparams.yaml"))]
    for path in candidates:
        if path.is_file():
            loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
            return flatten(loaded), str(path.relative_to(folder))
    return {}, None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file, or None when absent."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_run(folder: str | Path, split: str = "test") -> RunFiles:
    """What ``folder`` (an evaluated run) recorded; a missing file leaves its answers empty."""
    folder = Path(folder)
    run = RunFiles(folder, split, read_evaluation(folder, split))
    run.data_check = read_json(folder / "data_check.json")
    if (folder / "table1.csv").is_file():
        run.table1 = read_table_one(folder / "table1.csv")
        run.table1_groups = dict(iter(run.table1.groupby(["characteristic", "partition"])))
    run.config, run.config_file = read_config(folder)
    run.audit = read_json(folder / "audit" / "audit.json")
    # an ensemble's evaluation names its members "a, b": the first one's record is read
    named = (run.evaluation.model.checkpoint or "").split(", ")[0]
    if named and Path(named).is_file():
        run.checkpoint = named
        run.checkpoint_sha256 = sha256_of(named)
        run.record = read_record(named)
    elif named:
        log.warning("%s: the evaluated checkpoint %s is gone: its record is unread", folder, named)
    manifest = run.record.data.manifest if run.record and run.record.data else None
    if manifest and Path(manifest).is_file():
        run.manifest = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        run.manifest_file = manifest
    return run


# ---- the answers -------------------------------------------------------------------------
def metrics_file(run: RunFiles) -> str:
    return f"metrics/{run.split}.json"


def table1_rows(run: RunFiles, characteristic: str, partition: str = ALL) -> pd.DataFrame:
    """Rows of Table 1 for one characteristic and partition (empty without Table 1)."""
    empty = pd.DataFrame(columns=["level", "count", "percent"])
    return run.table1_groups.get((characteristic, partition), empty)


def levels_text(rows: pd.DataFrame) -> str:
    """``A 30 (60.0 %), B 20 (40.0 %)``."""
    return ", ".join(f"{r.level} {int(r['count'])} ({r.percent:.1f} %)" for _, r in rows.iterrows())


def partitions(run: RunFiles) -> list[str]:
    """Table 1's partitions other than all images."""
    if run.table1 is None:
        return []
    return [p for p in dict.fromkeys(run.table1["partition"]) if p != ALL]


def study(run: RunFiles) -> Answer:
    evaluation = run.evaluation
    if run.config.get("task_name") == "train":
        text = (
            f"Development of a {evaluation.model.backbone} classifier (training, checkpoint "
            f"and threshold selection on the val split) and its evaluation on the held-out "
            f"{evaluation.split} split of {evaluation.mode}."
        )
    else:
        text = (
            f"Evaluation of a trained {evaluation.model.backbone} classifier on {evaluation.mode}."
        )
    return Answer(text, tuple(s for s in (run.config_file, metrics_file(run)) if s))


def sources(run: RunFiles) -> Answer | None:
    data = run.record.data if run.record else None
    if data is None and run.table1 is None:
        return None
    cited, parts = [], []
    if data is not None:
        where = f"manifest `{data.manifest}`" if data.manifest else "the folder layout"
        parts.append(f"Images under `{data.root}`, listed by {where}.")
        cited.append(f"{run.cite(run.checkpoint)} (record)")
    found = table1_rows(run, "source")
    if len(found):
        parts.append(f"Sources: {levels_text(found)}.")
        cited.append("table1.csv")
    if run.manifest is not None and "license" in run.manifest:
        by_source = (
            run.manifest.groupby("source")["license"].unique()
            if "source" in run.manifest
            else pd.Series({"all images": run.manifest["license"].unique()})
        )
        licences = "; ".join(f"{s}: {', '.join(sorted(set(v)))}" for s, v in by_source.items())
        parts.append(f"Licences as the manifest gives them: {licences}.")
        cited.append(run.cite(run.manifest_file))
    else:
        parts.append("Licences: not recorded (no license column in the manifest).")
    parts.append("Rationale and representativeness: for the author to complete.")
    return Answer(" ".join(parts), tuple(cited))


def skipped_counts(run: RunFiles) -> Counter:
    """Files left out, by reason: out of scope, or unreadable."""
    return Counter(
        "out of scope" if why.startswith("out of scope") else "unreadable"
        for why in run.evaluation.skipped.values()
    )


def leak_counts(run: RunFiles) -> str:
    check = run.data_check or {}
    return (
        f"{len(check.get('exact_duplicates', []))} groups of exact duplicates, "
        f"{len(check.get('conflicting_labels', []))} identical images under both labels, "
        f"{len(check.get('patients_in_several_splits', {}))} patients in several splits"
        + (
            f", {len(check['near_duplicates'])} near-duplicate pairs"
            if check.get("near_duplicates") is not None
            else ""
        )
    )


def eligibility(run: RunFiles) -> Answer | None:
    if run.data_check is None:
        return None
    left_out = skipped_counts(run)
    settings = ", ".join(f"{k}={run.config[k]}" for k in INPUT_KEYS if k in run.config)
    excluded = (
        ", ".join(f"{n} {why}" for why, n in sorted(left_out.items())) if left_out else "none"
    )
    text = (
        "Included: every image the data lists that decodes and passes the data check "
        f"({run.data_check['n_images']} images). Excluded: {excluded}. Data check: "
        f"{leak_counts(run)}."
        + (f" Settings: {settings}." if settings else "")
        + " Clinical eligibility criteria: for the author to complete."
    )
    cited = ["data_check.json", metrics_file(run)] + ([run.config_file] if settings else [])
    return Answer(text, tuple(cited))


def flow(run: RunFiles) -> Answer | None:
    if run.data_check is None or run.table1 is None:
        return None
    left_out = sum(skipped_counts(run).values())
    counts = "; ".join(
        f"{p}: {int(table1_rows(run, 'images', p)['count'].iloc[0])} images "
        f"({levels_text(table1_rows(run, 'class', p))})"
        for p in partitions(run)
    )
    return Answer(
        f"{run.data_check['n_images'] + left_out} images listed, {left_out} left out "
        f"(see eligibility), {run.data_check['n_images']} used: {counts}.",
        ("data_check.json", metrics_file(run), "table1.csv"),
    )


def preprocessing(run: RunFiles) -> Answer | None:
    if run.record is None:
        return None
    p = run.record.preprocessing
    lungs = (
        f" first cropped to the lungs' box (masks: {p.lung_crop_masks}, margin {p.lung_margin}),"
        if p.lung_crop
        else ""
    )
    blank = " pixels outside the lung mask set to black," if p.outside_lungs == "blank" else ""
    return Answer(
        f"Each image read as 8-bit grayscale,{lungs}{blank} resized and centre-cropped to "
        f"{p.image_size} px (crop ratio {p.crop_ratio}), repeated to {p.channels} channel(s) "
        f"and normalised with mean {list(p.mean)} and std {list(p.std)}.",
        (f"{run.cite(run.checkpoint)} (record: preprocessing)",),
    )


def quality(run: RunFiles) -> Answer | None:
    check = run.data_check
    if check is None:
        return None
    modes = ", ".join(f"{m} {n}" for m, n in check.get("modes", {}).items())
    sizes = check.get("sizes", {})
    size = ", ".join(f"{k} {v.get('min')}–{v.get('max')} px" for k, v in sizes.items())
    return Answer(
        f"Every file decoded and hashed (sha256) before use; image modes: {modes}; sizes: "
        f"{size}; {len(check.get('implausible', {}))} implausible images; {leak_counts(run)}. "
        "Whether quality was similar across groups: for the author to complete.",
        ("data_check.json",),
    )


def reference(run: RunFiles) -> Answer:
    findings = table1_rows(run, "finding")
    given = (
        f"the manifest's label column (`{run.cite(run.manifest_file)}`)"
        if run.manifest_file
        else "the data's labels (folder names or manifest)"
    )
    text = f"The reference standard is the label as given by {given}: COVID vs non-COVID."
    if len(findings):
        text += f" Findings as given: {levels_text(findings)}."
    text += " How the labels were established (RT-PCR, radiologist): for the author to complete."
    cited = [run.cite(run.manifest_file)] if run.manifest_file else []
    cited += ["table1.csv"] if len(findings) else []
    if not cited and run.checkpoint:
        cited = [f"{run.cite(run.checkpoint)} (record: data)"]
    return Answer(text, tuple(cited))


def predictors(run: RunFiles) -> Answer | None:
    if run.record is None:
        return None
    return Answer(
        "The model's only input is the radiograph's pixels (preprocessed as described under "
        "data preparation); no clinical or metadata variable is an input. Metadata columns "
        "serve Table 1, subgroups and the audit only.",
        (f"{run.cite(run.checkpoint)} (record)",),
    )


def acquisition(run: RunFiles) -> Answer | None:
    parts = [
        f"{c}: {levels_text(table1_rows(run, c))}"
        for c in ("view", "manufacturer", "institution")
        if len(table1_rows(run, c))
    ]
    cited = ("table1.csv",) if parts else ()
    sizes = (run.data_check or {}).get("sizes", {})
    if sizes:
        sized = ", ".join(f"{k} {v.get('min')}–{v.get('max')} px" for k, v in sizes.items())
        parts.append(f"Image sizes {sized}")
        cited += ("data_check.json",)
    if not parts:
        return None
    return Answer("; ".join(parts) + ". Acquisition protocols: for the author to complete.", cited)


def sample_size(run: RunFiles) -> Answer:
    c = run.evaluation.counts
    return Answer(
        f"No sample-size calculation is recorded: the {run.evaluation.split} split holds "
        f"{c.n} images ({c.n_positive} COVID, {c.n_negative} non-COVID). The justification "
        "is for the author to complete.",
        (metrics_file(run),),
    )


def missing(run: RunFiles) -> Answer | None:
    if run.table1 is None:
        return None
    t = run.table1
    gaps = t[(t["partition"] == ALL) & (t["level"] == "not recorded") & (t["count"].fillna(0) > 0)]
    parts = [
        f"{r.characteristic} not recorded for {int(r['count'])} images" for _, r in gaps.iterrows()
    ]
    without = table1_rows(run, "images without a patient id")
    if len(without) and int(without["count"].iloc[0]):
        parts.append(f"{int(without['count'].iloc[0])} images without a patient id")
    found = "; ".join(parts) if parts else "no metadata value missing"
    return Answer(
        f"{found}. Nothing is imputed: metadata is not a model input; an image without a value "
        "is left out of that column's subgroups only.",
        ("table1.csv",),
    )


def partitioning(run: RunFiles) -> Answer | None:
    data = run.record.data if run.record else None
    model = run.evaluation.model
    if data is None:
        return None
    how = "; ".join(f"{split}: {origin}" for split, origin in data.split_origin.items())
    fold = f", fold {model.fold} of {model.num_folds}" if model.fold is not None else ""
    held = f", held-out source {model.holdout_source!r}" if model.holdout_source else ""
    fractions = ", ".join(
        f"{k.split('.')[-1]}={run.config[k]}"
        for k in ("data.val_fraction", "data.test_fraction")
        if k in run.config
    )
    return Answer(
        f"Seed {model.seed}{fold}{held}" + (f" ({fractions})" if fractions else "") + f". {how}.",
        tuple(
            s
            for s in (
                f"{run.cite(run.checkpoint)} (record: data)",
                metrics_file(run),
                run.config_file,
            )
            if s
        ),  # noqa: E501
    )


def disjointness(run: RunFiles) -> Answer | None:
    if run.data_check is None:
        return None
    patients = table1_rows(run, "patients")
    n_patients = patients["count"].iloc[0] if len(patients) else None
    several = len(run.data_check.get("patients_in_several_splits", {}))
    if n_patients is None or pd.isna(n_patients):
        text = (
            "By image: the data has no patient ids, so images of one patient may sit in "
            "several partitions."
        )
    else:
        text = f"By patient ({int(n_patients)} patients): {several} patients sit in several splits."
    return Answer(f"{text} Data check: {leak_counts(run)}.", ("table1.csv", "data_check.json"))


def model(run: RunFiles) -> Answer | None:
    r = run.record
    if r is None:
        return None
    finetune = run.config.get("model.finetune")
    return Answer(
        f"{r.backbone} convolutional network, classes {list(r.class_names)}, output "
        f"P(COVID); Grad-CAM layer {r.target_layer}"
        + (f"; fine-tuned: {finetune}" if finetune else "")
        + ".",
        tuple(
            s for s in (f"{run.cite(run.checkpoint)} (record)", finetune and run.config_file) if s
        ),
    )


def training(run: RunFiles) -> Answer | None:
    found = [f"{k}={run.config[k]}" for k in TRAINING_KEYS if run.config.get(k) is not None]
    if not found:
        return None
    precision = run.record.training_precision if run.record else None
    text = "; ".join(found) + (f"; trained in {precision} precision" if precision else "")
    return Answer(text + ".", (run.config_file,))


def selection(run: RunFiles) -> Answer | None:
    if run.checkpoint is None:
        return None
    monitor = run.config.get("monitor", "val/auroc")
    epoch = run.record.val_epoch if run.record else None
    return Answer(
        f"The checkpoint with the best {monitor} on the val split"
        + (f" (epoch {epoch})" if epoch is not None else "")
        + f" was tested: `{run.cite(run.checkpoint)}`.",
        tuple(s for s in (run.config_file, metrics_file(run)) if s),
    )


def ensembling(run: RunFiles) -> Answer:
    combined = run.evaluation.model.ensemble
    return Answer(combined or "None: one checkpoint.", (metrics_file(run),))


def installed(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def git_version(path: Path) -> str | None:
    """``<commit>`` (``+ uncommitted changes`` when dirty) of the repository holding ``path``,
    or None outside one (an installed wheel)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + (" + uncommitted changes" if dirty else "")


CODE_DIR = Path(__file__).resolve().parent


def software(run: RunFiles) -> Answer:
    versions = ", ".join(f"{p} {installed(p)}" for p in PACKAGES)
    trained = (
        f"; the checkpoint was saved by deepcovid {run.record.deepcovid_version}"
        if run.record
        else ""
    )
    return Answer(
        f"Python with {versions} (installed when this checklist was written){trained}.",
        tuple(s for s in (run.checkpoint and f"{run.cite(run.checkpoint)} (record)",) if s),
    )


def initialisation(run: RunFiles) -> Answer | None:
    r = run.record
    if r is None:
        return None
    if not r.pretrained_on:
        text = "Random initialisation (no pretrained weights)."
    else:
        text = f"Starting weights pretrained on {', '.join(r.pretrained_on)}"
        if r.weights_file is not None:
            text += f", read from `{r.weights_file.path}` (sha256 {r.weights_file.sha256})"
        text += "."
    return Answer(text, (f"{run.cite(run.checkpoint)} (record: provenance)",))


def measures(run: RunFiles) -> Answer:
    e = run.evaluation
    fixed = ", ".join(f"{p.threshold:g}" for p in e.fixed_points)
    chosen = ", ".join(rule_name(p) for p in e.chosen_points)
    plots = sorted(p.name for p in (run.folder / "plots").glob("*.png"))
    return Answer(
        "AUROC and average precision; sensitivity and specificity (with PPV, NPV and "
        f"likelihood ratios) at fixed thresholds {fixed} and at thresholds chosen on val "
        f"({chosen}); calibration (ECE over {e.calibration.n_bins} bins, Brier score, "
        "calibration intercept and slope); net benefit (decision curve)"
        + (f"; plots: {', '.join(plots)}" if plots else "")
        + ".",
        (metrics_file(run), "report.md", *(["plots/"] if plots else [])),
    )


def uncertainty(run: RunFiles) -> Answer:
    e = run.evaluation
    ci = f"{100 * e.confidence:g} %"
    point = next(iter([*e.chosen_points, *e.fixed_points]), None)
    extra = []
    if point is not None:
        for name in ("ppv", "npv", "lr_positive", "lr_negative"):
            estimate = getattr(point, name, None)
            if estimate is not None:
                extra.append(f"{name}: {estimate.method}")
    cal = e.calibration
    extra += [
        f"{name}: {getattr(cal, name).method}"
        for name in ("brier", "intercept", "slope")
        if getattr(cal, name) is not None
    ]
    boot = e.bootstrap
    return Answer(
        f"{ci} intervals. Sensitivity and specificity: {INTERVAL_NAMES[e.interval_used]}. "
        f"AUROC and average precision: percentile bootstrap ({boot.n_resamples} resamples of "
        f"{boot.unit}s, seed {boot.seed})."
        + (f" Other interval methods: {'; '.join(extra)}." if extra else ""),
        (metrics_file(run),),
    )


def thresholds(run: RunFiles) -> Answer:
    e = run.evaluation
    val = e.validation
    chosen = "; ".join(
        f"{rule_name(p)} → {'none' if p.threshold is None else f'{p.threshold:.4g}'}"
        for p in e.chosen_points
    )
    where = (
        f" chosen on {val.source} ({val.counts.n} images, {val.counts.n_positive} COVID): {chosen}"
        if val is not None
        else " none chosen on val"
    )
    return Answer(
        f"Output P(COVID); an image is called COVID when P(COVID) ≥ the threshold. Default "
        f"threshold {e.threshold:g} (the model's); fixed thresholds "
        f"{', '.join(f'{p.threshold:g}' for p in e.fixed_points)}; thresholds{where}.",
        (metrics_file(run),),
    )


def imbalance(run: RunFiles) -> Answer | None:
    balance = run.config.get("data.balance") or (
        run.record.data.balance if run.record and run.record.data else None
    )
    if balance is None:
        return None
    factor = run.config.get("data.oversample_factor")
    trained = run.record.data.training_prevalence if run.record and run.record.data else None
    how = f"over-sampling of the smaller class ×{factor}" if balance == "oversample" else balance
    return Answer(
        f"data.balance={balance} ({how}); COVID share of the images drawn in training "
        f"{percent(trained)} vs {percent(run.evaluation.counts.n_positive / max(run.evaluation.counts.n, 1))} "  # noqa: E501
        "in the evaluated split. The model's output is not recalibrated; Platt and temperature "
        "scaling fitted on val are reported beside it.",
        tuple(
            s
            for s in (run.config_file, run.checkpoint and f"{run.cite(run.checkpoint)} (record)")
            if s
        ),
    )


def internal(run: RunFiles) -> Answer:
    e = run.evaluation
    return Answer(
        f"{e.split} split of {e.mode}: {e.counts.n} images never used for training or "
        "checkpoint and threshold selection.",
        (metrics_file(run),),
    )


def external(run: RunFiles) -> Answer:
    e = run.evaluation
    if e.mode.startswith("external"):
        text = f"External test: {e.mode} ({e.counts.n} images)."
    elif e.model.holdout_source:
        held = e.model.holdout_source
        text = f"Leave-one-source-out: the held-out source {held!r} is the test split."
    else:
        text = (
            "No external test in this run: the test split comes from the same data as "
            "training. External testing, or why it was not done: for the author to complete."
        )
    return Answer(text, (metrics_file(run),))


def performance(run: RunFiles) -> Answer:
    e = run.evaluation
    ci = ci_label(e.confidence)
    c = e.counts
    points = [
        sentence_for(p, None, e.split, ci).removeprefix("- ")
        for p in e.chosen_points
        if p.threshold is not None
    ]
    default = next((p for p in e.fixed_points if p.threshold == e.threshold), None)
    if default is not None:
        points.append(sentence_for(default, None, e.split, ci).removeprefix("- "))
    return Answer(
        f"{e.split} split: {c.n} images ({c.n_positive} COVID, {c.n_negative} non-COVID). "
        f"{discrimination_sentence(e)} " + " ".join(points),
        (metrics_file(run), "report.md"),
    )


def calibration(run: RunFiles) -> Answer:
    c = run.evaluation.calibration
    recalibrated = "; ".join(
        f"{r.method} scaling fitted on val: ECE {number(r.ece)}" for r in c.recalibrated
    )
    return Answer(
        f"ECE {number(c.ece)}; Brier {estimate_text(c.brier)}; calibration intercept "
        f"{estimate_text(c.intercept)}; slope {estimate_text(c.slope)}"
        + (f"; {recalibrated}" if recalibrated else "")
        + ".",
        (metrics_file(run), "plots/reliability.png"),
    )


def subgroup_text(groups: list) -> str:
    return ", ".join(f"{g.value} (n = {g.counts.n}, AUROC {number(g.auroc)})" for g in groups)


def subgroups(run: RunFiles) -> Answer | None:
    found = run.evaluation.subgroups
    if not found:
        return None
    return Answer(
        "; ".join(f"by {column}: {subgroup_text(groups)}" for column, groups in found.items())
        + ". Fairness across sociodemographic groups: for the author to judge.",
        (metrics_file(run), "report.md"),
    )


def clusters(run: RunFiles) -> Answer | None:
    found = {k: v for k, v in run.evaluation.subgroups.items() if k in ("source", "institution")}
    if not found:
        return None
    return Answer(
        "Performance per cluster: "
        + "; ".join(f"by {k}: {subgroup_text(v)}" for k, v in found.items())
        + ". No pooling model of heterogeneity.",
        (metrics_file(run),),
    )


def updating(run: RunFiles) -> Answer:
    e = run.evaluation
    site = "site-recalibrated" in e.mode
    methods = ", ".join(r.method for r in e.calibration.recalibrated) or "none"
    return Answer(
        (
            "Thresholds re-chosen on this site's val split. "
            if site
            else "The model is not updated. "
        )
        + f"Recalibrations fitted on val and reported: {methods}.",
        (metrics_file(run),),
    )


def specification(run: RunFiles) -> Answer | None:
    if run.checkpoint is None:
        return None
    return Answer(
        f"The checkpoint `{run.cite(run.checkpoint)}` (sha256 {run.checkpoint_sha256}) carries "
        "the weights and their record (preprocessing, class names, thresholds, the val "
        "predictions and the data's splits): `python -m deepcovid.predict "
        f"ckpt_path={run.cite(run.checkpoint)}` computes P(COVID) for new images. Access "
        "conditions: for the author to complete.",
        (run.cite(run.checkpoint),),
    )


def code(run: RunFiles) -> Answer:
    version = git_version(CODE_DIR)
    text = (
        f"deepcovid at git commit {version}"
        if version
        else f"deepcovid {installed('deepcovid')} (installed, not a git checkout)"
    )
    saved = f"; checkpoint saved by deepcovid {run.record.deepcovid_version}" if run.record else ""
    return Answer(
        f"{text} (`git rev-parse HEAD` when this checklist was written){saved}. Where the "
        "code is shared: for the author to complete.",
        (f"{run.cite(run.checkpoint)} (record)",) if run.record else (),
    )


def characteristics(run: RunFiles) -> Answer | None:
    if run.table1 is None:
        return None
    columns = [
        c
        for c in dict.fromkeys(run.table1["characteristic"])
        if c not in ("images", "patients", "images without a patient id", "class")
    ]
    return Answer(
        f"Table 1 per partition ({', '.join(partitions(run))}): images, patients, class shares"
        + (f" and {', '.join(columns)}" if columns else "")
        + ".",
        ("table1.md", "table1.csv"),
    )


def partition_counts(run: RunFiles) -> Answer | None:
    if run.table1 is None:
        return None
    return Answer(
        "; ".join(
            f"{p}: {int(table1_rows(run, 'images', p)['count'].iloc[0])} images, "
            f"{int(table1_rows(run, 'class', p).set_index('level').loc['covid', 'count'])} COVID"
            for p in partitions(run)
        )
        + ".",
        ("table1.csv",),
    )


def notes(run: RunFiles) -> Answer | None:
    found = run.evaluation.notes
    if not found:
        return None
    return Answer(
        "Caveats the evaluation recorded: " + " ".join(found) + " Other limitations: for the "
        "author to complete.",
        (metrics_file(run), "report.md"),
    )


def input_checks(run: RunFiles) -> Answer | None:
    found = [f"{k}={run.config[k]}" for k in INPUT_KEYS if k in run.config]
    if not found:
        return None
    return Answer(
        "Unreadable files and images that are not frontal chest radiographs (scope check) are "
        f"refused, left out or kept as configured: {', '.join(found)}; `python -m "
        "deepcovid.predict` applies the same checks.",
        (run.config_file,),
    )


def failures(run: RunFiles) -> Answer | None:
    e = run.evaluation
    default = next((p for p in e.fixed_points if p.threshold == e.threshold), None)
    if default is None or default.counts is None:
        return None
    c = default.counts
    cases = sorted(str(p.relative_to(run.folder)) for p in run.folder.glob("**/failure*.csv"))
    return Answer(
        f"At the default threshold {e.threshold:g}: {c.fp} false positives and {c.fn} false "
        f"negatives of {e.counts.n} images (confusion matrix in plots/confusion_matrix.png)"
        + (f"; the most confident errors in {', '.join(cases)}" if cases else "")
        + ". Their clinical reading: for the author to complete.",
        (metrics_file(run), "plots/confusion_matrix.png", *cases),
    )


def audit(run: RunFiles) -> Answer | None:
    if run.audit is None:
        return None
    flags = run.audit.get("flags") or []
    return Answer(
        "Shortcut audit (lung ablation, attribution to the lungs, confounders, probes): "
        + ("; ".join(flags) if flags else "no finding")
        + ".",
        ("audit/audit.json", "audit/report.md"),
    )


def explainability(run: RunFiles) -> Answer | None:
    if run.audit is None:
        return None
    return Answer(
        "Saliency maps (Grad-CAM and the configured explainers) checked by the audit: their "
        "share inside the lungs, and model- and label-randomisation sanity checks.",
        ("audit/audit.json", "audit/report.md"),
    )


ANSWERS: dict[str, Callable[[RunFiles], Answer | None]] = {
    "study": study, "sources": sources, "eligibility": eligibility, "flow": flow,
    "preprocessing": preprocessing, "quality": quality, "reference": reference,
    "predictors": predictors, "acquisition": acquisition, "sample_size": sample_size,
    "missing": missing, "partitioning": partitioning, "disjointness": disjointness,
    "model": model, "training": training, "selection": selection, "ensembling": ensembling,
    "software": software, "initialisation": initialisation, "measures": measures,
    "uncertainty": uncertainty, "thresholds": thresholds, "imbalance": imbalance,
    "internal": internal, "external": external, "performance": performance,
    "calibration": calibration, "subgroups": subgroups, "clusters": clusters,
    "updating": updating, "specification": specification, "code": code,
    "characteristics": characteristics, "partition_counts": partition_counts, "notes": notes,
    "input_checks": input_checks, "failures": failures, "audit": audit,
    "explainability": explainability,
}  # fmt: skip


# ---- checklist.md -------------------------------------------------------------------------
def cited(answer: Answer, prefix: str) -> str:
    """`` (from `a`, `b`)``: the answer's files, relative ones prefixed by the run's folder as
    seen from checklist.md; nothing when it cites no file."""
    names = [s if Path(s).is_absolute() else f"{prefix}{s}" for s in answer.sources]
    return f" (from {', '.join(f'`{n}`' for n in names)})" if names else ""


def item_lines(
    item: ChecklistItem, answers: list[dict[str, Answer | None]], prefixes: list[str]
) -> list[str]:
    """The Markdown of one item: its answers per run (one line when all runs agree)."""
    lines = [f"### {item.guideline} {item.number}: {item.topic}", ""]
    filled = False
    for key in item.answers:
        found = [answered[key] for answered in answers]
        if all(a is None for a in found):
            continue
        filled = True
        texts = {a.text for a in found if a is not None}
        if len(answers) == 1 or (len(texts) == 1 and None not in found):
            lines += [found[0].text + cited(found[0], prefixes[0]), ""]
            continue
        for prefix, answer in zip(prefixes, found, strict=True):
            if answer is not None:
                run = prefix.rstrip("/") or "."
                lines.append(f"- `{run}`: {answer.text}{cited(answer, prefix)}")
        lines.append("")
    if not filled:
        lines += [FOR_AUTHOR, ""]
    return lines


def checklist_markdown(runs: list[RunFiles], output: Path) -> str:
    """checklist.md for ``runs``, its citations relative to ``output`` (the folder it is in)."""
    prefixes = []
    for run in runs:
        relative = os.path.relpath(run.folder.resolve(), output.resolve())
        prefixes.append("" if relative == "." else f"{relative}/")
    answers = [{key: answer(run) for key, answer in ANSWERS.items()} for run in runs]
    filled = sum(any(answers[0][k] for k in item.answers) for item in ITEMS)
    which = ", ".join(f"`{p.rstrip('/') or '.'}`" for p in prefixes)
    lines = [
        "# Reporting checklist: TRIPOD+AI 2024 and CLAIM 2024",
        "",
        f"Pre-filled by deepcovid from the files of {len(runs)} evaluated run(s) ({which}), "
        f"{filled} of {len(ITEMS)} items from what the runs recorded, each citing the file it "
        f"comes from (paths relative to this file); the rest are marked {FOR_AUTHOR.strip('*')}"
        " Check every pre-filled answer before submitting: they say what the run did, not "
        "why.",
        "",
        *(f"- {guideline}: {note}" for guideline, note in NUMBERING.items()),
        "",
    ]
    for guideline in NUMBERING:
        lines += [f"## {guideline}", ""]
        for item in (i for i in ITEMS if i.guideline == guideline):
            lines += item_lines(item, answers, prefixes)
    return "\n".join(lines)


def write_checklist(
    run_dirs: list[str | Path], output: str | Path | None = None, split: str = "test"
) -> Path:
    """Write ``checklist.md`` for the evaluated runs in ``run_dirs`` to ``output`` (default:
    the one run's folder)."""
    if not run_dirs:
        raise ValueError("write_checklist needs at least one evaluated run folder")
    output = Path(output if output is not None else run_dirs[0])
    runs = [read_run(d, split) for d in run_dirs]
    path = write_text_atomic(checklist_markdown(runs, output), output / "checklist.md")
    log.info("wrote the reporting checklist to %s", path)
    return path
