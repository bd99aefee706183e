import os
from pathlib import Path

from deepcovid.data.validate import NON_UTF8_NAME, describe, find_unreadable, printable
from tests.conftest import chest_like, save_in_mode


def test_find_unreadable_names_every_bad_file_with_its_reason(tmp_path: Path) -> None:
    good = [save_in_mode(chest_like(32, i, True), tmp_path / f"ok{i}.png", "L") for i in range(3)]
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    truncated = tmp_path / "cut.jpg"
    save_in_mode(chest_like(64, 0, True), truncated, "RGB")
    truncated.write_bytes(truncated.read_bytes()[:300])
    paths = [
        good[0],
        tmp_path / "empty.png",
        good[1],
        tmp_path / "text.png",
        truncated,
        tmp_path / "gone.png",
        good[2],
    ]
    bad = find_unreadable(paths, workers=3)
    assert list(bad) == [str(p) for p in paths if p not in good]  # input order, all of them
    assert "empty" in bad[str(tmp_path / "empty.png")]
    assert "cannot decode" in bad[str(tmp_path / "text.png")]
    assert "truncated" in bad[str(truncated)]
    assert "no such file" in bad[str(tmp_path / "gone.png")]
    assert not any(reason.startswith(str(tmp_path)) for reason in bad.values())  # no path twice


def test_non_utf8_file_name_is_reported_and_printable(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    name = os.fsdecode(raw)
    save_in_mode(chest_like(32, 0, True), Path(name), "L")
    bad = find_unreadable([name])
    assert bad == {name: NON_UTF8_NAME}
    text = describe(bad)
    text.encode("utf-8")  # escaped: safe to log, print and write
    assert "caf\\udce9.png" in text and printable(name) in text


def test_all_good_files_give_an_empty_result(covidx5k_shared: Path) -> None:
    assert find_unreadable(sorted(covidx5k_shared.rglob("*.*"))) == {}
