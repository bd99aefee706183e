"""Per-image predictions: gathered once per image whatever the padding, joined with their
sample rows, and read back with ids as text."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepcovid.metrics.predictions import PredictionStore, predictions_frame, read_predictions


def test_the_prediction_store_keeps_the_log_odds() -> None:
    store = PredictionStore()
    logits = torch.tensor([[0.0, 30.0], [0.0, -2.0], [1.0, 0.5]])
    store.update(torch.tensor([2, 0, 1]), torch.tensor([1, 0, 1]), logits)
    samples = pd.DataFrame({"path": ["a", "b", "c"], "label": [0, 1, 1]})
    frame = predictions_frame(store.compute(), samples)
    assert frame["logit_covid"].tolist() == pytest.approx([-2.0, -0.5, 30.0])
    assert frame["prob_covid"].iloc[2] == 1.0  # saturated; the log-odds are not


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric PredictionStore")
def test_padding_duplicates_are_dropped_and_stale_indices_refused() -> None:
    store = PredictionStore()
    logits = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    store.update(torch.tensor([1, 0]), torch.tensor([1, 0]), logits)
    store.update(torch.tensor([1]), torch.tensor([1]), logits[:1])  # a DistributedSampler pad
    predictions = store.compute()
    assert predictions.index.tolist() == [0, 1] and len(predictions) == 2
    assert predictions.label.tolist() == [0, 1]
    assert len(PredictionStore().compute()) == 0
    stale = pd.DataFrame({"path": ["a", "b"], "label": [1, 0]})
    with pytest.raises(RuntimeError, match="indices are stale"):
        predictions_frame(predictions, stale)


def test_ids_are_read_back_as_text(tmp_path: Path) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text("path,label,prob_covid,patient_id,age\na.png,1,0.9,007,61\nb.png,0,0.1,,\n")
    frame = read_predictions(path)
    assert frame["patient_id"].tolist() == ["007", None]
    assert frame["label"].tolist() == [1, 0] and frame["age"].iloc[0] == 61
    assert np.isclose(frame["prob_covid"].iloc[0], 0.9)
