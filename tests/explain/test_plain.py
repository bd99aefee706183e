"""Plain occlusion: each occluded copy built in full and scored by one forward pass."""

import pytest
import torch

from deepcovid.explain.grid import OcclusionGrid
from deepcovid.explain.plain import PlainRunner, as_scores


def test_each_copy_is_the_image_with_its_window_set_to_the_baseline() -> None:
    image = torch.arange(1 * 2 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6)
    baseline = torch.full_like(image, -1.0)
    seen: list[torch.Tensor] = []

    def model(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return batch.sum((1, 2, 3))

    runner = PlainRunner(model, OcclusionGrid.create((6, 6), 2, 2))
    assert runner.start(image, baseline) == image.sum()
    scores = runner.occluded(torch.tensor([0, 4]), torch.tensor([2, 0]))
    expected = image.repeat(2, 1, 1, 1)
    expected[0, :, 0:2, 2:4] = -1.0
    expected[1, :, 4:6, 0:2] = -1.0
    assert torch.equal(seen[-1], expected)
    assert torch.equal(scores, expected.sum((1, 2, 3)))


def test_a_model_without_one_score_per_image_is_refused_with_the_fix() -> None:
    assert torch.equal(as_scores(torch.ones(3, 1), 3), torch.ones(3))
    with pytest.raises(ValueError, match=r"returned \(3, 2\) for a batch of 3 .*ProbCovid"):
        as_scores(torch.ones(3, 2), 3)
    with pytest.raises(ValueError, match="returned tuple for a batch of 1"):
        as_scores((torch.ones(1),), 1)
