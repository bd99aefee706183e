"""The heatmap sanity checks within the audit: run on a class-balanced sample of the audited
images, each explainer's checks kept, its findings added under its title."""

import dataclasses

import pandas as pd
import torch

from deepcovid.explain.sanity import FLAG_WORDS, SanitySettings
from deepcovid.shortcuts.result import AuditSettings
from deepcovid.shortcuts.sanity import with_sanity_checks
from tests.conftest import tiny_classifier
from tests.shortcuts.audit_results import result


def edges(classifier, images: torch.Tensor) -> torch.Tensor:
    """An explainer that ignores the model: the image's horizontal gradient."""
    gray = images.mean(1)
    return torch.nn.functional.pad((gray[:, :, 1:] - gray[:, :, :-1]).abs(), (0, 1))


def test_an_explainer_that_ignores_the_model_is_flagged_under_its_title() -> None:
    torch.manual_seed(1)
    dataset = [{"image": torch.rand(3, 16, 16)} for _ in range(6)]
    table = pd.DataFrame({"label": [1, 1, 1, 1, 0, 0]})
    sanity = SanitySettings(images=2, layer_shares=(1.0,), deletion_fractions=(0.0, 0.5))
    audited = dataclasses.replace(
        result(), flags=["an earlier finding"], titles={"edges": "Edge map"}
    )
    checked = with_sanity_checks(
        audited, tiny_classifier(), dataset, table, {"edges": edges},
        AuditSettings(sanity=sanity),
    )  # fmt: skip
    assert set(checked.sanity) == {"edges"} and checked.sanity["edges"].randomisation.flagged
    assert checked.sanity["edges"].randomisation.n_images == 2
    assert checked.flags[0] == "an earlier finding"
    assert any(f.startswith("Edge map: ") and FLAG_WORDS in f for f in checked.flags[1:])
