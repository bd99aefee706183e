"""The audit's images.csv names the images that are not frontal chest radiographs (kept here by
the test suite's data.out_of_scope=keep): in_scope and scope_reason, as the scope check says."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from deepcovid.scope.check import load_checker
from tests.test_audit import audited, mask_dir  # noqa: F401 (fixtures)


@pytest.mark.slow
def test_images_csv_has_the_scope_check_verdicts(audited: Path) -> None:  # noqa: F811
    images = pd.read_csv(audited / "images.csv", keep_default_na=False)
    verdicts, _ = load_checker().check_paths(map(Path, images["path"]))
    assert images["scope_reason"].tolist() == [verdicts[Path(p)].reason for p in images["path"]]
    assert images["in_scope"].tolist() == [verdicts[Path(p)].in_scope for p in images["path"]]
    assert (~images["in_scope"]).any()  # generated images are not radiographs
