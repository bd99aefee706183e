"""A human-readable text dump of a DICOM SR: the header that identifies it, then its content
tree, one content item a line (relationship, value type, concept: value), indented by depth."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

INDENT = "  "
HEADER = (
    ("PatientID", "Patient ID"),
    ("StudyInstanceUID", "Study"),
    ("SeriesInstanceUID", "Series"),
    ("SOPInstanceUID", "Instance"),
    ("SeriesDescription", "Series description"),
    ("CompletionFlag", "Completion"),
    ("PreliminaryFlag", "Preliminary"),
    ("VerificationFlag", "Verification"),
)


def code_text(code: Dataset) -> str:
    return f"{code.CodeMeaning} ({code.CodingSchemeDesignator} {code.CodeValue})"


def reference_text(reference: Dataset) -> str:
    sop_class = UID(reference.ReferencedSOPClassUID)
    return f"{sop_class.name} {reference.ReferencedSOPInstanceUID}"


def value_text(item: Dataset) -> str:
    """The value of one content item as text ('' for a container)."""
    value_type = item.ValueType
    if value_type == "TEXT":
        return repr(str(item.TextValue))
    if value_type == "CODE":
        return code_text(item.ConceptCodeSequence[0])
    if value_type == "NUM":
        measured = item.MeasuredValueSequence[0]
        unit = measured.MeasurementUnitsCodeSequence[0]
        return f"{measured.NumericValue} [{unit.CodeValue}, {unit.CodeMeaning}]"
    if value_type == "UIDREF":
        return str(item.UID)
    if value_type in ("IMAGE", "COMPOSITE"):
        return reference_text(item.ReferencedSOPSequence[0])
    if value_type == "CONTAINER":
        return ""
    keyword = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime", "PNAME": "PersonName"}
    return str(item.get(keyword.get(value_type, ""), f"<{value_type} value not shown>"))


def item_lines(item: Dataset, depth: int) -> list[str]:
    """This item's line and, below it, its children's."""
    concept = item.get("ConceptNameCodeSequence")
    name = code_text(concept[0]) if concept else "(no concept name)"
    relationship = item.get("RelationshipType", "")
    value = value_text(item)
    line = f"{INDENT * depth}{relationship + ' ' if relationship else ''}{item.ValueType} {name}"
    lines = [f"{line}: {value}" if value else line]
    for child in item.get("ContentSequence", []):
        lines.extend(item_lines(child, depth + 1))
    return lines


def evidence_lines(dataset: Dataset) -> list[str]:
    lines = []
    for study in dataset.get("CurrentRequestedProcedureEvidenceSequence", []):
        for series in study.ReferencedSeriesSequence:
            for instance in series.ReferencedSOPSequence:
                lines.append(
                    f"Evidence: study {study.StudyInstanceUID}, series "
                    f"{series.SeriesInstanceUID}, {reference_text(instance)}"
                )
    return lines


def render_sr_text(sr: Dataset | str | Path) -> str:
    """The SR (a dataset, or the path of an SR file) as indented text."""
    dataset = sr if isinstance(sr, Dataset) else pydicom.dcmread(sr)
    if dataset.get("Modality") != "SR" or "ValueType" not in dataset:
        raise ValueError(f"{getattr(dataset, 'filename', 'dataset')}: not a DICOM SR document")
    lines = [f"{UID(dataset.SOPClassUID).name}"]
    lines += [f"{label}: {dataset.get(keyword, '')}" for keyword, label in HEADER]
    lines += evidence_lines(dataset)
    lines += [""] + item_lines(dataset, 0)
    return "\n".join(lines) + "\n"
