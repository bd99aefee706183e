"""The file a model's starting weights came from, by path and content."""

import hashlib
from pathlib import Path

from deepcovid.models.provenance import WeightsFile


def test_a_weights_file_is_named_by_resolved_path_and_sha256(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "w.pt").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    found = WeightsFile.of("w.pt")
    assert found.path == str(tmp_path.resolve() / "w.pt")
    assert found.sha256 == hashlib.sha256(b"weights").hexdigest()
    assert WeightsFile.from_dict(found.to_dict()) == found
    assert WeightsFile.from_dict(None) is None
