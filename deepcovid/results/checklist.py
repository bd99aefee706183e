"""The items of the TRIPOD+AI (2024) and CLAIM (2024) reporting checklists, as data: each with
its published number, its topic in short, and the answers (:mod:`deepcovid.results.checklist_fill`)
a run can give to it; an item without answers is left for the author.

Item numbers and topics are paraphrased, not quoted. TRIPOD+AI: Collins GS, Moons KGM, Dhiman P,
et al. BMJ 2024;385:e078378 (doi:10.1136/bmj-2023-078378), 27 items with sub-items 1–27c.
CLAIM 2024: Tejani AS, Klontzas ME, Gatti AA, et al. Radiol Artif Intell 2024;6(4):e240300
(doi:10.1148/ryai.240300), 44 items.
"""

from __future__ import annotations

from dataclasses import dataclass

TRIPOD_AI = "TRIPOD+AI 2024"
CLAIM = "CLAIM 2024"
# Where each guideline's numbering was checked, printed in checklist.md.
NUMBERING = {
    TRIPOD_AI: (
        "Numbers as in the published TRIPOD+AI checklist (Collins et al., BMJ 2024;385:e078378); "
        "checked here against two secondary reproductions of its table, which agree, not "
        "against the BMJ text itself."
    ),
    CLAIM: (
        "Numbers as in the 44-item CLAIM 2024 list (Tejani et al., Radiol Artif Intell "
        "2024;6(4):e240300) as given by a secondary summary of the published table; they were "
        "not checked against the RSNA text here: confirm them there before submitting."
    ),
}


@dataclass(frozen=True)
class ChecklistItem:
    """One checklist item: guideline, published number, topic, and the answers that fill it."""

    guideline: str
    number: str
    topic: str
    answers: tuple[str, ...] = ()


def _items(guideline: str, rows: tuple[tuple[str, str, tuple[str, ...]], ...]) -> tuple:
    return tuple(ChecklistItem(guideline, n, topic, answers) for n, topic, answers in rows)


TRIPOD_ITEMS = _items(
    TRIPOD_AI,
    (
        ("1", "Title", ()),
        ("2", "Abstract (TRIPOD+AI for Abstracts)", ()),
        ("3a", "Healthcare context and rationale", ()),
        ("3b", "Target population, intended purpose and users", ()),
        ("3c", "Known health inequalities", ()),
        ("4", "Objectives: development, evaluation or both", ("study",)),
        ("5a", "Data sources, rationale, representativeness", ("sources",)),
        ("5b", "Dates of the data", ()),
        ("6a", "Setting, number and location of centres", ("sources",)),
        ("6b", "Eligibility criteria", ("eligibility",)),
        ("6c", "Treatments received", ()),
        ("7", "Data preparation and quality checking", ("preprocessing", "quality")),
        ("8a", "Outcome definition and assessment", ("reference",)),
        ("8b", "Qualifications of outcome assessors", ()),
        ("8c", "Blinding of outcome assessment", ()),
        ("9a", "Choice of initial predictors", ("predictors",)),
        ("9b", "Definition of predictors", ("predictors", "acquisition")),
        ("9c", "Qualifications of predictor assessors", ()),
        ("10", "Sample size", ("sample_size",)),
        ("11", "Missing data", ("missing",)),
        ("12a", "How the data were used: partitioning", ("partitioning", "disjointness")),
        ("12b", "Handling of predictors (rescaling, standardisation)", ("preprocessing",)),
        ("12c", "Model type, building steps, tuning, internal validation", ("model", "training")),
        ("12d", "Heterogeneity across clusters", ("clusters",)),
        ("12e", "Performance measures and plots", ("measures", "uncertainty")),
        ("12f", "Model updating (recalibration)", ("updating",)),
        ("12g", "How the predictions were calculated", ("specification",)),
        ("13", "Class imbalance methods", ("imbalance",)),
        ("14", "Fairness approaches", ()),
        ("15", "Model output, classification thresholds", ("thresholds",)),
        ("16", "Differences between development and evaluation data", ("external",)),
        ("17", "Ethical approval", ()),
        ("18a", "Funding", ()),
        ("18b", "Conflicts of interest", ()),
        ("18c", "Protocol", ()),
        ("18d", "Registration", ()),
        ("18e", "Data sharing", ("sources",)),
        ("18f", "Code sharing", ("code",)),
        ("19", "Patient and public involvement", ()),
        ("20a", "Flow of participants", ("flow",)),
        ("20b", "Characteristics (Table 1)", ("characteristics",)),
        ("20c", "Evaluation vs development data distributions", ("characteristics",)),
        ("21", "Participants and events in each analysis", ("partition_counts",)),
        ("22", "Full model specification", ("specification",)),
        (
            "23a",
            "Performance with intervals, key subgroups",
            ("performance", "calibration", "subgroups"),
        ),  # noqa: E501
        ("23b", "Heterogeneity across clusters", ("clusters",)),
        ("24", "Model updating results", ("updating",)),
        ("25", "Interpretation", ()),
        ("26", "Limitations", ("notes",)),
        ("27a", "Handling poor or unavailable input data", ("input_checks",)),
        ("27b", "User interaction and expertise", ()),
        ("27c", "Next steps for research", ()),
    ),
)

CLAIM_ITEMS = _items(
    CLAIM,
    (
        ("1", "Title: AI methodology and its category", ()),
        ("2", "Structured abstract", ()),
        ("3", "Scientific and clinical background", ()),
        ("4", "Objectives and hypotheses", ()),
        ("5", "Prospective or retrospective", ()),
        ("6", "Study goal", ("study",)),
        ("7", "Data sources", ("sources",)),
        ("8", "Inclusion and exclusion criteria", ("eligibility",)),
        ("9", "Data preprocessing", ("preprocessing",)),
        ("10", "Selection of data subsets", ("eligibility",)),
        ("11", "De-identification", ()),
        ("12", "Missing data", ("missing",)),
        ("13", "Image acquisition protocol", ("acquisition",)),
        ("14", "Reference standard definition", ("reference",)),
        ("15", "Rationale for the reference standard", ()),
        ("16", "Source and qualifications of annotators", ()),
        ("17", "Annotation procedures and tools", ()),
        ("18", "Inter- and intra-rater variability", ()),
        ("19", "Partition assignment and proportions", ("partitioning", "imbalance")),
        ("20", "Level at which partitions are disjoint", ("disjointness",)),
        ("21", "Intended sample size (test set)", ("sample_size",)),
        ("22", "Model architecture", ("model",)),
        ("23", "Software libraries and versions", ("software",)),
        ("24", "Initialisation of model parameters", ("initialisation",)),
        ("25", "Training details and hyperparameters", ("training",)),
        ("26", "Model selection", ("selection",)),
        ("27", "Ensembling", ("ensembling",)),
        ("28", "Performance metrics", ("measures",)),
        ("29", "Uncertainty and statistical significance", ("uncertainty",)),
        ("30", "Robustness or sensitivity analysis", ("audit",)),
        ("31", "Explainability methods", ("explainability",)),
        ("32", "Internal testing", ("internal",)),
        ("33", "External testing", ("external",)),
        ("34", "Trial registration", ()),
        ("35", "Numbers included and excluded (flow)", ("flow",)),
        ("36", "Characteristics per partition (Table 1)", ("characteristics",)),
        ("37", "Performance across partitions and subgroups", ("performance", "subgroups")),
        ("38", "Diagnostic accuracy with intervals", ("performance", "calibration")),
        ("39", "Failure analysis", ("failures",)),
        ("40", "Limitations", ("notes",)),
        ("41", "Implications for practice", ()),
        ("42", "Full protocol", ()),
        ("43", "Availability of software, model and data", ("code", "specification")),
        ("44", "Funding", ()),
    ),
)

ITEMS: tuple[ChecklistItem, ...] = (*TRIPOD_ITEMS, *CLAIM_ITEMS)
