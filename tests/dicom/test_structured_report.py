"""The SR's parts: the algorithm as one observer, the classification and its coded items."""

import numpy as np
import pytest

from deepcovid.dicom import AlgorithmInfo
from deepcovid.dicom.codes import ABSENT, CERTAINTY_OF_FINDING, PRESENT
from deepcovid.dicom.structured_report import Classification, NotAssessed, finding_items

SHA256 = "0123456789abcdef" * 4


def test_algorithm_needs_a_sha256_and_is_one_observer() -> None:
    with pytest.raises(ValueError, match="64 lower-case hex"):
        AlgorithmInfo(weights_sha256="abc")
    same = AlgorithmInfo(weights_sha256=SHA256)
    other = AlgorithmInfo(weights_sha256="f" * 64)
    assert same.device_uid == AlgorithmInfo(weights_sha256=SHA256).device_uid != other.device_uid


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan"), np.inf, "0.5"])
def test_a_classification_takes_probabilities_only(bad) -> None:
    with pytest.raises(ValueError, match="must be a probability in \\[0, 1\\]"):
        Classification(bad, 0.5, "youden")
    with pytest.raises(ValueError, match="threshold must be a probability"):
        Classification(0.5, bad, "youden")
    with pytest.raises(ValueError, match="operating_point must name"):
        Classification(0.5, 0.5, "  ")


def test_the_finding_is_the_probability_and_the_call_at_the_threshold() -> None:
    (measurement,), (call,) = finding_items(Classification(0.42, 0.42, "youden"))
    assert measurement.name == CERTAINTY_OF_FINDING and measurement.value == pytest.approx(0.42)
    assert call.value == PRESENT
    assert finding_items(Classification(0.4199, 0.42, "youden"))[1][0].value == ABSENT
    assert finding_items(NotAssessed("DICOM Modality CT", "youden", 0.42)) == ([], [])
