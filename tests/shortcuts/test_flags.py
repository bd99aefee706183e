"""The audit's findings in words: each sentence fires on a hand-built typed result whose number
crosses its threshold, and none fires on one whose numbers all stay on the safe side."""

import dataclasses

import numpy as np
import pytest

from deepcovid.metrics.operating_points import NO_INTERVAL
from deepcovid.shortcuts.ablation import AblationResult, Retained, retained_share
from deepcovid.shortcuts.flags import findings, retained_decision, with_findings
from deepcovid.shortcuts.probe import ClassProbe
from deepcovid.shortcuts.result import AuditSettings
from tests.shortcuts.audit_results import ablation, attribution, confounder, probe, result, retained

SETTINGS = AuditSettings()


def test_a_model_that_reads_the_lungs_raises_no_finding() -> None:
    assert findings(result(), SETTINGS) == []
    assert with_findings(result()).flags == []


def test_each_finding_fires_on_its_own_number() -> None:
    cases = {
        "maps hold no positive attribution": result(lung_attribution=attribution(zero_maps=4)),
        "no more than a uniform map would": result(
            lung_attribution=attribution(mean_share=0.3, share_over_area=1.0)
        ),
        "no more often than the lungs'": result(
            lung_attribution=attribution(pointing_hit_rate=0.25)
        ),
        "it reads something outside the lungs": result(
            ablation=ablation(0.90, 0.80, 0.88), retained=retained(0.90, 0.80, (0.6, 1.0))
        ),
        "the lungs alone do not carry its decision": result(ablation=ablation(0.90, 0.55, 0.60)),
        "beyond what the label says": result(
            confounders={"source": confounder(probe=probe(0.7, 0.62))}
        ),
        "its features tell the 2 source values apart": result(
            confounders={"source": confounder(probe=probe(0.58, 0.75))}
        ),
        "its discrimination comes largely from the source mix": result(
            confounders={"source": confounder(balanced_auroc=0.7, balanced_auroc_ci=(0.6, 0.8))}
        ),
        "label and source are confounded": result(
            confounders={"source": confounder(single_class={"C": "COVID"}, single_class_share=0.2)}
        ),
        "are not frontal chest radiographs": result(out_of_scope={"/d/x1.png": "CT (p=0.99)"}),
        "does not separate the classes here": result(ablation=ablation(0.60, 0.55, 0.6, low=0.45)),
        "the intact AUROC is undefined": result(
            ablation={**ablation(0.9, 0.55, 0.88), "intact": AblationResult(40, None, NO_INTERVAL)}
        ),
    }
    for words, audited in cases.items():
        found = with_findings(audited).flags
        assert len(found) == 1 and words in found[0], (words, found)


def test_the_findings_word_their_numbers() -> None:
    (zero,) = findings(result(lung_attribution=attribution(zero_maps=4)), SETTINGS)
    assert zero.startswith("4 of 24 Grad-CAM maps hold no positive attribution")
    (uniform,) = findings(
        result(lung_attribution=attribution(mean_share=0.3, share_over_area=1.0)), SETTINGS
    )
    assert "put 30 % of their positive attribution inside the lungs, which cover 30 %" in uniform
    (removed,) = findings(
        result(ablation=ablation(0.90, 0.80, 0.88), retained=retained(0.90, 0.80, (0.6, 1.0))),
        SETTINGS,
    )
    assert "retains 75 % (95 % CI 60 %–100 %) of its discrimination above chance" in removed
    assert "(AUROC 0.800 against 0.900 intact; decided on the interval" in removed
    (balanced,) = findings(
        result(
            confounders={"source": confounder(balanced_auroc=0.7, balanced_auroc_ci=(0.6, 0.8))}
        ),
        SETTINGS,
    )
    assert balanced.startswith("within A images alone the AUROC is 0.880 and within B 0.900")
    assert "it is 0.700 (95 % CI 0.600–0.800)" in balanced and "Cramér's V of source" in balanced
    (single,) = findings(
        result(
            confounders={"source": confounder(single_class={"C": "COVID"}, single_class_share=0.2)}
        ),
        SETTINGS,
    )
    assert "1 source value(s) hold one class only (C (COVID only)), 20 % of the images" in single
    many = {f"/d/x{i}.png": "CT" for i in range(7)}
    (scope,) = findings(result(out_of_scope=many), SETTINGS)
    assert scope.startswith("7 audited image(s)") and "x4.png: CT and 2 more;" in scope


def test_where_the_model_does_not_discriminate_its_heatmaps_are_not_read() -> None:
    """Intact AUROC interval reaching below chance: the ablation says so, and maps that put no
    more in the lungs than a uniform map are not flagged (where such a model looks says nothing)."""
    chance = result(
        ablation=ablation(0.60, 0.55, 0.6, low=0.45),
        lung_attribution=attribution(mean_share=0.3, share_over_area=1.0, pointing_hit_rate=0.1),
    )
    (found,) = findings(chance, SETTINGS)
    assert found.startswith("the model does not separate the classes here: intact AUROC 0.600")
    assert "(95 % CI 0.450–0.970)" in found
    assert findings(result(ablation=None, retained=None), SETTINGS) == []


def test_the_thresholds_come_from_the_settings() -> None:
    thin = result(lung_attribution=attribution(mean_share=0.5, share_over_area=1.5))
    assert findings(thin, SETTINGS) == []
    assert len(findings(thin, AuditSettings(share_over_area=2.0))) == 1
    beyond = result(confounders={"source": confounder(probe=probe(0.7, 0.62))})
    assert findings(beyond, AuditSettings(probe_margin=0.2)) == []


def test_within_a_class_the_probe_is_judged_against_that_class_alone() -> None:
    """52 % within COVID images whose commonest source is 40 %: flagged, though below the 55 %
    the label alone reaches over all images."""
    within = dataclasses.replace(
        probe(0.58, 0.62), within_class={"COVID": ClassProbe(0.52, 0.4, 2, 20)}
    )
    (found,) = findings(result(confounders={"source": confounder(probe=within)}), SETTINGS)
    assert found.startswith("within the 20 COVID images alone its features tell the 2 source")
    assert "right for 52 %, against 40 % for always naming their most common source" in found


@pytest.mark.parametrize(("intact", "removed"), [(0.90, 0.70), (0.80, 0.65), (0.70, 0.60)])
def test_exactly_half_retained_is_flagged(intact: float, removed: float) -> None:
    """(0.70 − 0.5) / (0.90 − 0.5) is 0.49999999999999994 in floats: it used to pass unflagged."""
    share = float(retained_share(np.float64(intact), np.float64(removed)))
    settings = AuditSettings()
    exact = Retained(intact - removed, NO_INTERVAL, share, (share, 0.8), 100, 100, "patient")
    assert retained_decision(exact, settings)[0]
    no_interval = Retained(intact - removed, NO_INTERVAL, share, NO_INTERVAL, 100, 10, "image",
                           {"retained_ci": "too few"})  # fmt: skip
    flagged, rule = retained_decision(no_interval, settings)
    assert flagged and "decided on the share itself" in rule
    below = Retained(0.2, NO_INTERVAL, share - 1e-6, (share - 1e-6, 0.8), 100, 100, "patient")
    assert not retained_decision(below, settings)[0]
