"""The heatmap sanity checks in the audit: a seeded, class-balanced sample of the audited
images, each explainer checked (:mod:`deepcovid.explain.sanity`), the findings added."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from deepcovid.data.dataset import XrayDataset
from deepcovid.explain.explainers import Explainer
from deepcovid.explain.panel import balanced_sample
from deepcovid.explain.sanity import sanity_checks, sanity_findings
from deepcovid.shortcuts.measure import Audited
from deepcovid.shortcuts.result import AuditResult, AuditSettings


def with_sanity_checks(
    result: AuditResult,
    model: Audited,
    dataset: XrayDataset,
    table: pd.DataFrame,
    explainers: Mapping[str, Explainer],
    settings: AuditSettings,
) -> AuditResult:
    """``result`` with every explainer's sanity checks and their findings."""
    sanity = settings.sanity
    positions = np.arange(len(table))
    chosen = balanced_sample(positions, table["label"].to_numpy(), sanity.images, sanity.seed)
    device = next(model.net.parameters()).device
    images = torch.stack([dataset[int(i)]["image"] for i in chosen]).to(device)
    checks = sanity_checks(model, images, explainers, sanity, settings.baseline)
    named = {result.title(method): check for method, check in checks.items()}
    flags = [*result.flags, *sanity_findings(named, sanity)]
    return dataclasses.replace(result, sanity=checks, flags=flags)
