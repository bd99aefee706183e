"""Every notebook executes against a run trained here, so none of them can rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from deepcovid.train import train
from deepcovid.utils.config import compose_config
from tests.conftest import tiny_overrides

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def finished_run(covidx5k_shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    overrides = tiny_overrides(
        covidx5k_shared, out, "data.val_fraction=0.25", "metrics.bootstrap_resamples=50"
    )
    train(compose_config("train", overrides, output_dir=str(out)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path: Path, finished_run: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPCOVID_RUN_DIR", str(finished_run))
    notebook = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "commit notebooks without outputs: CI produces them"
    )
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    text = "\n".join(
        str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert f"run: {finished_run}" in text
    assert "AUROC" in text and "specificity" in text
