"""Input checks shared by the statistics."""

import numpy as np
import pytest

from deepcovid.metrics.bootstrap import Clusters
from deepcovid.metrics.inputs import checked_ids, checked_scores, cluster_codes, has_patient_ids


def test_checked_scores_accepts_and_converts() -> None:
    label, prob = checked_scores([0, 1, True], [0.0, 1.0, 0.5])
    assert label.dtype == np.int64 and prob.dtype == np.float64
    assert label.tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    ("label", "prob", "message"),
    [
        ([0, 1], [0.5], "1 scores"),
        ([0, 2], [0.5, 0.5], "0 \\(non-COVID\\) or 1"),
        ([0, 1], [0.5, np.nan], "NaN or logits"),
        ([0, 1], [-0.1, 0.5], "NaN or logits"),
        ([[0, 1]], [[0.5, 0.5]], "shape"),
    ],
)
def test_checked_scores_refuses_bad_input(label, prob, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        checked_scores(np.array(label), np.array(prob))


def test_ids_and_cluster_codes_follow_clusters() -> None:
    ids = np.array(["b", "a", None, "b", np.nan], dtype=object)
    assert has_patient_ids(ids) and not has_patient_ids(None)
    assert not has_patient_ids(np.array([None, np.nan], dtype=object))
    codes = cluster_codes(ids, 5)
    assert codes[0] == codes[3] and len(set(codes.tolist())) == 4  # a, b, two without id
    assert len(Clusters(ids, 5)) == 4
    assert cluster_codes(None, 3).tolist() == [0, 1, 2]
    assert checked_ids(None, 3) is None
    with pytest.raises(ValueError, match="2 patient ids for 3 images"):
        checked_ids(["a", "b"], 3)
