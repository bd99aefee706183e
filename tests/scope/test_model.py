"""The scope network: images of any working size to one logit per class; its input."""

import numpy as np
import torch
from PIL import Image

from deepcovid.scope.model import CLASS_WORDS, CLASSES, IN_SCOPE, ScopeNet, ScopeShape, model_input


def test_the_net_maps_images_to_a_logit_per_class() -> None:
    net = ScopeNet(ScopeShape(widths=(4, 8), dropout=0.0)).eval()
    assert net(torch.zeros(3, 1, 32, 32)).shape == (3, len(CLASSES))
    assert ScopeShape(widths=(4, 8)).to_dict() == {"widths": [4, 8], "dropout": 0.2}
    assert CLASSES[IN_SCOPE] == "frontal" and set(CLASS_WORDS) == set(CLASSES)


def test_the_input_is_one_standardised_channel_at_the_working_size() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (90, 70), dtype=np.uint8))
    x = model_input(image, size=48)
    assert x.shape == (1, 48, 48) and x.dtype == torch.float32
    assert abs(x.mean().item()) < 0.1 and abs(x.std().item() - 1) < 0.1
