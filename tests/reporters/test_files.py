from __future__ import annotations

import os
from pathlib import Path

import pytest

from remediate.reporters.files import write_atomically


def test_writes_through_a_temp_file_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "out" / "run.json"
    write_atomically(str(path), "one\n")
    write_atomically(str(path), "two\n")
    assert path.read_text() == "two\n"
    assert os.listdir(path.parent) == ["run.json"]


def test_a_failed_write_keeps_the_old_report_and_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.json"
    path.write_text("old\n")

    def refuse(_src: str, _dst: str) -> None:
        raise OSError("read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="read-only file system"):
        write_atomically(str(path), "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["run.json"]


def test_dash_is_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    write_atomically("-", "report\n")
    assert capsys.readouterr().out == "report\n"
