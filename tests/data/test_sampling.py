from collections import Counter

import numpy as np
import pytest
import torch

from deepcovid.data.sampling import TrainingSampler, augmentation_seeds, inverse_frequency_weights

LABELS = [1] * 10 + [0] * 50


def positions(sampler: TrainingSampler) -> list[int]:
    return [position for position, _ in sampler]


def test_oversampling_repeats_minority_factor_times() -> None:
    sampler = TrainingSampler(LABELS, LABELS, factor=5, seed=1)
    drawn = positions(sampler)
    assert len(drawn) == 10 * 5 + 50
    counts = Counter(drawn)
    assert all(counts[i] == 5 for i in range(10)) and all(counts[i] == 1 for i in range(10, 60))


def test_epochs_reshuffle_and_seed_reproduces() -> None:
    a, b = (
        TrainingSampler(LABELS, LABELS, 5, seed=1),
        TrainingSampler(LABELS, LABELS, 5, seed=1),
    )
    first = positions(a)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert sorted(positions(a)) == sorted(first) and positions(a) != first


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_draw_disjoint_shares_of_one_plan(world: int) -> None:
    draws = [
        list(TrainingSampler(LABELS, LABELS, 5, num_replicas=world, rank=r, seed=7))
        for r in range(world)
    ]
    shards = [[position for position, _ in draw] for draw in draws]
    assert len({len(s) for s in shards}) == 1
    single = positions(TrainingSampler(LABELS, LABELS, 5, seed=7))
    padded = np.resize(single, len(shards[0]) * world)
    # Interleaving the shards gives back the single-process plan (plus wrap-around padding).
    interleaved = [shards[i % world][i // world] for i in range(len(padded))]
    assert interleaved == padded.tolist()
    for shard in shards:  # each rank sees the same expected class ratio
        positives = np.mean([LABELS[i] for i in shard])
        assert positives == pytest.approx(50 / 100, abs=0.1)
    seeds = [seed for draw in draws for _, seed in draw]
    assert len(set(seeds)) == len(seeds)  # every draw its own augmentation seed


def test_augmentation_seeds_depend_on_seed_epoch_and_draw_only() -> None:
    draws = np.arange(100)
    first = augmentation_seeds(3, 2, draws)
    assert np.array_equal(first, augmentation_seeds(3, 2, draws))
    assert np.array_equal(first[10:20], augmentation_seeds(3, 2, draws[10:20]))
    assert len(set(first.tolist())) == 100 and (first >= 0).all()
    assert not np.array_equal(first, augmentation_seeds(3, 3, draws))
    assert not np.array_equal(first, augmentation_seeds(4, 2, draws))
    repeated = TrainingSampler(LABELS, LABELS, factor=5, seed=1)
    by_position: dict[int, set[int]] = {}
    for position, seed in repeated:
        by_position.setdefault(position, set()).add(seed)
    assert all(len(by_position[i]) == 5 for i in range(10))  # 5 copies, 5 augmentations


def test_inverse_frequency_weights() -> None:
    weights = inverse_frequency_weights(LABELS)
    assert torch.allclose(weights, torch.tensor([60 / 100, 60 / 20]))
    with pytest.raises(ValueError, match="a class has no training samples"):
        inverse_frequency_weights([0, 0])
