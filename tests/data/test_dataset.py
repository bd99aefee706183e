"""The dataset over a sample table: items carry the table's index, and a seeded item's
augmentation depends on its seed alone."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import v2

from deepcovid.data.dataset import XrayDataset


def table(tmp_path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"x{i}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return pd.DataFrame({"path": paths, "label": [1, 0, 1]}, index=[7, 3, 11])


AUGMENT = v2.Compose([v2.PILToTensor(), v2.RandomCrop(8), v2.ToDtype(torch.float32)])


def test_items_carry_label_and_the_tables_index(tmp_path: Path) -> None:
    dataset = XrayDataset(table(tmp_path), AUGMENT)
    assert len(dataset) == 3
    item = dataset[1]
    assert item["label"] == 0 and item["index"] == 3 and item["image"].shape == (1, 8, 8)


def test_a_seeded_item_depends_on_its_seed_alone(tmp_path: Path) -> None:
    dataset = XrayDataset(table(tmp_path), AUGMENT)
    torch.manual_seed(1)
    first = dataset[(2, 42)]["image"]
    state = torch.get_rng_state()
    torch.manual_seed(999)
    torch.rand(17)
    assert torch.equal(dataset[(2, 42)]["image"], first)  # whatever the global stream
    assert not torch.equal(dataset[(2, 43)]["image"], first)  # 81 crops: a seed changes it
    torch.manual_seed(1)
    dataset[(2, 42)]
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is left as it was


def test_a_loader_reads_the_paths(tmp_path: Path) -> None:
    read: list[str] = []

    def cached(path: str) -> torch.Tensor:
        read.append(path)
        return torch.zeros(1, 8, 8, dtype=torch.uint8)

    rows = table(tmp_path)
    dataset = XrayDataset(rows, lambda image: image.float(), loader=cached)
    assert torch.equal(dataset[0]["image"], torch.zeros(1, 8, 8)) and read == [rows["path"][7]]
