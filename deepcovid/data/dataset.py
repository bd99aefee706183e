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
    (PIL image) or its preprocessed cache entry (uint8 tensor, see :mod:`deepcovid.data.cache`).
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

    def __getitem__(self, position: int) -> dict[str, Any]:
        image = self.transform(self.loader(self.paths[position]))
        return {"image": image, "label": self.labels[position], "index": self.indices[position]}
