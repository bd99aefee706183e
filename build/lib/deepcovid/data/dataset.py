"""Torch dataset over a sample table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from deepcovid.data.io import load_image


class XrayDataset(Dataset):
    """Rows of a sample table as ``{"image", "label", "index"}`` items.

    ``index`` is the row's label in the full sample table, so predictions gathered from any
    rank map back to path, patient and source. ``loader`` reads a path: the file itself
    (PIL image) or its cached pixels (uint8 tensor, see :mod:`deepcovid.data.cache`).

    An item asked for as ``(position, seed)`` (what :class:`~deepcovid.data.sampling.
    TrainingSampler` yields) is transformed with the random generator seeded by ``seed``: its
    augmentation then depends on nothing else, in whichever worker process it is made, so a run
    resumed at an epoch boundary sees the same images as the uninterrupted run.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        transform: Callable[[Image.Image | torch.Tensor], torch.Tensor],
        loader: Callable[[str], Image.Image | torch.Tensor] = load_image,
    ) -> None:
        self.paths = table["path"].tolist()
        self.labels = table["label"].astype(int).tolist()
        self.indices = table.index.astype(int).tolist()
        self.transform = transform
        self.loader = loader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        position, seed = item if isinstance(item, tuple) else (item, None)
        image = self.loader(self.paths[position])
        if seed is None:
            image = self.transform(image)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image = self.transform(image)
        return {"image": image, "label": self.labels[position], "index": self.indices[position]}
