"""Loading an export: without Lightning or pickle, and refused when its weights or metadata
were altered or are missing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepcovid.export import export
from deepcovid.models.exported import ExportError, load_exported, metadata_path, read_metadata
from tests.conftest import REPO, best_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tiny_run: Path) -> Path:
    return best_checkpoint(tiny_run)


def images(root: Path, count: int = 4) -> list[Path]:
    return sorted((root / "test").rglob("*.*"))[:count]


def test_safetensors_export_loads_without_lightning_or_pickle(
    checkpoint: Path, covidx5k_shared: Path, tmp_path: Path
) -> None:
    weights = export(checkpoint, "safetensors", tmp_path)
    code = f"""
import pickle, sys
sys.modules["lightning"] = sys.modules["pytorch_lightning"] = None  # any import fails
class NoPickle(pickle.Unpickler):
    def __init__(self, *a, **k):
        raise AssertionError("unpickling attempted")
pickle.Unpickler = NoPickle
import torch
from deepcovid.data.io import load_image
from deepcovid.models.exported import load_exported
model = load_exported({str(weights)!r})
image = model.eval_transform(load_image({str(images(covidx5k_shared)[0])!r}))
with torch.no_grad():
    print(float(model.prob_covid(image[None])[0]))
assert not any(name.startswith("lightning") for name in sys.modules if sys.modules[name])
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert 0.0 <= float(result.stdout.strip()) <= 1.0


def test_altered_or_incomplete_export_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    weights = export(checkpoint, "safetensors", tmp_path)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="sha256 differs"):
        load_exported(weights)
    metadata_path(weights).unlink()  # the header's own sha256 of the tensors catches it too
    with pytest.raises(ExportError, match="tensors differ from the sha256 in its header"):
        load_exported(weights)
    torchscript = export(checkpoint, "torchscript", tmp_path)
    metadata_path(torchscript).unlink()  # other formats need their JSON
    with pytest.raises(ExportError, match="needs both"):
        read_metadata(torchscript)
