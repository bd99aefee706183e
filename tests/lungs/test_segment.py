"""``deepcovid.lungs.segment``: inputs, mask files, the table, skipped inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepcovid.lungs.masks import folder_mask_path, read_mask_file
from deepcovid.lungs.segment import MASK_COLUMNS, list_inputs, mask_names, segment
from deepcovid.utils.config import compose_config
from tests.lungs.conftest import write_chests


def run_segment(inputs: Path, weights: Path, out: Path):
    cfg = compose_config("lungs_segment", [f"inputs={inputs}", f"weights={weights}"], str(out))
    return segment(cfg)


def test_folder_in_masks_and_table_out(tmp_path: Path, tiny_weights: Path) -> None:
    paths = write_chests(tmp_path / "in", 3)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG truncated")
    out = tmp_path / "out"
    run = run_segment(tmp_path / "in", tiny_weights, out)
    assert [p.name for p in run.skipped] == ["broken.png"]
    table = pd.read_csv(out / "lung_masks.csv", keep_default_na=False)
    assert list(table.columns) == MASK_COLUMNS
    # the folder's own masks/ are images too: 3 chests + their 3 masks, the broken one skipped
    assert len(table) == 6
    row = table[table["path"] == str(paths[0])].iloc[0]
    mask = read_mask_file(out / row["lung_mask"])
    assert mask.shape == (48, 60)
    assert row["lung_area_share"] == pytest.approx(mask.mean())
    assert folder_mask_path(out / "masks", paths[0]) is not None  # usable as a mask_dir


def test_csv_inputs_and_a_single_file(tmp_path: Path, tiny_weights: Path) -> None:
    paths = write_chests(tmp_path / "in", 2)
    pd.DataFrame({"path": [p.name for p in paths]}).to_csv(tmp_path / "in" / "list.csv")
    assert list_inputs(tmp_path / "in" / "list.csv") == paths
    assert list_inputs(paths[0]) == [paths[0]]
    run = run_segment(paths[1], tiny_weights, tmp_path / "out")
    assert run.table["path"].tolist() == [str(paths[1])]


def test_bad_inputs_are_explained(tmp_path: Path, tiny_weights: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list_inputs(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        list_inputs(tmp_path / "empty")
    (tmp_path / "bad.csv").write_text("file\na.png\n")
    with pytest.raises(ValueError, match="needs a 'path' column"):
        list_inputs(tmp_path / "bad.csv")
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="none of the 1 inputs could be read"):
        run_segment(tmp_path / "only", tiny_weights, tmp_path / "out")


def test_shared_stems_get_distinct_names(tmp_path: Path) -> None:
    paths = [tmp_path / "train" / "a.png", tmp_path / "test" / "a.png", tmp_path / "test" / "b.png"]
    names = mask_names(paths)
    assert names[paths[0]] == "train__a.png" and names[paths[1]] == "test__a.png"
    assert names[paths[2]] == "b.png"
    one_folder = [tmp_path / "d" / "a.png", tmp_path / "d" / "a.jpg"]  # an export beside it
    assert set(mask_names(one_folder).values()) == {"a.png.png", "a.jpg.png"}


@pytest.mark.parametrize(
    "names",
    [
        ["d/a.jpg", "d/a.png", "d/a.jpg.png"],  # a fallback name is another input's stem name
        ["a/b.png", "x/b.png", "a__b.png"],  # a folder path is another input's file name
        ["a/IM.png", "a__IM.png", "a_/_IM.png", "a/__IM.png"],
    ],
)
def test_colliding_names_get_distinct_masks(tmp_path: Path, names: list[str]) -> None:
    paths = [tmp_path / name for name in names]
    assert len(set(mask_names(paths).values())) == len(paths)


@pytest.mark.slow
def test_command_line_writes_masks(tmp_path: Path, tiny_weights: Path) -> None:
    write_chests(tmp_path / "in", 1)
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "deepcovid.lungs.segment",
        f"inputs={tmp_path / 'in' / 'chest_0.png'}",
        f"weights={tiny_weights}",
        f"hydra.run.dir={out}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    mask = np.asarray(Image.open(out / "masks" / "chest_0.png"))
    assert mask.shape == (48, 60) and set(np.unique(mask)) <= {0, 255}
