from collections import Counter

import numpy as np
import pytest
import torch

from deepcovid.data.sampling import OversamplingSampler, inverse_frequency_weights

LABELS = [1] * 10 + [0] * 50


def test_oversampling_repeats_minority_factor_times() -> None:
    sampler = OversamplingSampler(LABELS, LABELS, factor=5, seed=1)
    drawn = list(sampler)
    assert len(drawn) == 10 * 5 + 50
    counts = Counter(drawn)
    assert all(counts[i] == 5 for i in range(10)) and all(counts[i] == 1 for i in range(10, 60))


def test_epochs_reshuffle_and_seed_reproduces() -> None:
    a, b = (
        OversamplingSampler(LABELS, LABELS, 5, seed=1),
        OversamplingSampler(LABELS, LABELS, 5, seed=1),
    )
    first = list(a)
    assert first == list(b)
    a.set_epoch(1)
    assert sorted(list(a)) == sorted(first) and list(a) != first


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_draw_disjoint_shares_of_one_plan(world: int) -> None:
    shards = [
        list(OversamplingSampler(LABELS, LABELS, 5, num_replicas=world, rank=r, seed=7))
        for r in range(world)
    ]
    assert len({len(s) for s in shards}) == 1
    single = list(OversamplingSampler(LABELS, LABELS, 5, seed=7))
    padded = np.resize(single, len(shards[0]) * world)
    # Interleaving the shards gives back the single-process plan (plus wrap-around padding).
    interleaved = [shards[i % world][i // world] for i in range(len(padded))]
    assert interleaved == padded.tolist()
    for shard in shards:  # each rank sees the same expected class ratio
        positives = np.mean([LABELS[i] for i in shard])
        assert positives == pytest.approx(50 / 100, abs=0.1)


def test_inverse_frequency_weights() -> None:
    weights = inverse_frequency_weights(LABELS)
    assert torch.allclose(weights, torch.tensor([60 / 100, 60 / 20]))
    with pytest.raises(ValueError, match="a class has no training samples"):
        inverse_frequency_weights([0, 0])
