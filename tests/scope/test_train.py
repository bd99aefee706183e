"""deepcovid.scope.train on generated manifests: weights that load and check, held-out
patients that it never trained on, and accuracies with Wilson intervals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from deepcovid.scope.check import load_checker
from deepcovid.scope.train import Example, drop_repeats, split_by_patient, train_scope
from deepcovid.scope.weights import WEIGHTS_NAME
from deepcovid.utils.config import compose_config
from tests.conftest import chest_like


def write_manifest(folder: Path, kinds: list[str], per_kind: int) -> Path:
    rows = []
    for kind in kinds:
        for i in range(per_kind):
            path = folder / kind / f"{kind}{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = chest_like(80, seed=i, positive=kind != "frontal")
            Image.fromarray(pixels if kind != "ct" else pixels.T).save(path)
            rows.append({"path": f"{kind}/{path.name}", "kind": kind, "patient_id": f"{kind}{i}"})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_training_writes_verified_weights_and_heldout_numbers(tmp_path: Path) -> None:
    frontal = write_manifest(tmp_path / "frontal", ["frontal"], 10)
    nonfrontal = write_manifest(tmp_path / "nonfrontal", ["lateral", "ct"], 5)
    out = tmp_path / "run"
    overrides = [
        "~frontal.cxr-fullres",
        f"frontal.cxr-dev={frontal}",
        f"nonfrontal={nonfrontal}",
        "epochs=1",
        "epoch_size=16",
        "batch_size=8",
        "synthetic.train=8",
        "synthetic.heldout=4",
        "heldout_fraction=0.4",
    ]
    result = train_scope(compose_config("scope_train", overrides, output_dir=str(out)))
    card = json.loads((out / "scope_net.json").read_text())
    scores = pd.read_csv(out / "heldout_scores.csv")
    real = scores[scores["source"] != "synthetic"]
    assert set(real["patient_id"]) == set(card["training"]["heldout_patients"])
    trained = sum(card["training"]["n_train_images"].values())
    assert trained + len(real) == 20 + 8
    heldout = result["heldout"]
    for name in ("frontal", "nonfrontal", "synthetic_other"):
        part = heldout[name]
        assert part["accuracy"] == part["correct"] / part["n"]
        assert 0 <= part["interval"][0] <= part["accuracy"] <= part["interval"][1] <= 1
    assert heldout["synthetic_other"]["n"] == 4
    assert result["speed"]["images"] == len(real) and result["speed"]["images_per_second"] > 0
    checker = load_checker(out / WEIGHTS_NAME)
    verdicts = checker.check_images([Image.fromarray(np.zeros((50, 60), np.uint8))])
    assert len(verdicts) == 1


def test_split_keeps_each_patient_on_one_side() -> None:
    examples = [Example(f"{i}.png", "frontal", f"p{i % 7}", "s") for i in range(40)]
    train, heldout = split_by_patient(examples, 0.3, seed=0)
    assert len(train) + len(heldout) == 40
    assert not {e.group for e in train} & {e.group for e in heldout}
    assert heldout


def test_a_file_listed_twice_is_kept_once(tmp_path: Path) -> None:
    """The shared nonfrontal manifest lists one lateral film under two patient ids: without
    this, one copy could be trained on and the other held out."""
    image = tmp_path / "a.png"
    Image.fromarray(chest_like(32, seed=0, positive=True)).save(image)
    copy = tmp_path / "b.png"
    copy.write_bytes(image.read_bytes())
    rows = [Example(str(image), "lateral", "p1", "s"), Example(str(image), "lateral", "p2", "s")]
    rows.append(Example(str(copy), "lateral", "p3", "s"))
    assert drop_repeats(rows) == rows[:1]
