"""The shipped weights on real X-rays: held-out Dice recomputed here, not read from a file."""

from __future__ import annotations

import pytest

from deepcovid.lungs.labelled import LabelledImage, heldout_split, load_all, read_sources
from deepcovid.lungs.masks import V7LungMasks
from deepcovid.lungs.overlap import score_segmenter
from deepcovid.lungs.segmenter import load_segmenter
from deepcovid.lungs.weights import SHIPPED_WEIGHTS, read_card
from deepcovid.utils.config import compose_config
from tests.conftest import SHARED_DATA, requires_real_data

MIN_MEAN_DICE = 0.85


@pytest.mark.realdata
@requires_real_data
def test_shipped_weights_reach_the_dice_target_on_held_out_patients() -> None:
    try:
        v7 = V7LungMasks()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    training = read_card(SHIPPED_WEIGHTS).training
    cfg = compose_config("lungs_train", [f"data_root={SHARED_DATA}"])
    sources = {name: cfg.sources[name] for name in training["sources"]}
    labelled = [r for r in read_sources(sources, v7) if r.has_mask]
    _, heldout = heldout_split(labelled, training["heldout_fraction"], training["seed"])
    assert sorted(r.path.name for r in heldout) == training["heldout"]  # the same patients
    items = [item for item in load_all(heldout, v7) if isinstance(item, LabelledImage)]
    assert len(items) == len(heldout)
    scores, _ = score_segmenter(load_segmenter(), items)
    assert scores["dice"].mean() >= MIN_MEAN_DICE, scores.nsmallest(5, "dice")
