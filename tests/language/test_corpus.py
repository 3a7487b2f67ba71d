"""The corpus: playbooks with the mistakes people make at 3 a.m., and the exact errors.

Each ``corpus/invalid/NAME.yaml`` has ``NAME.expected``: the exact text
``remediate validate`` prints for it. ``corpus/valid`` and the built-in
``playbooks/`` must validate cleanly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from remediate.cli.validate_output import as_text
from remediate.language.loader import load_file, load_text, playbook_files

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))
VALID = sorted((CORPUS / "valid").glob("*.yaml")) + sorted((ROOT / "playbooks").glob("*.yaml"))


def test_corpus_is_large() -> None:
    assert len(INVALID) >= 30
    assert len(VALID) >= 4


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    relative = path.relative_to(ROOT)
    result = load_file(relative)
    assert result.playbook is None
    assert as_text([result]) + "\n" == path.with_suffix(".expected").read_text()


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid(path: Path) -> None:
    result = load_file(path)
    assert [p.text() for p in result.problems] == []
    assert result.playbook is not None


def test_fifty_megabytes_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    result = load_file(big)
    assert [p.text() for p in result.problems] == [
        f"{big}:1:1: the file is 52,428,800 bytes; playbooks may be at most 1,048,576 bytes\n"
        "  hint: is this the right file? playbooks are short YAML documents"]


def test_missing_path() -> None:
    files, missing = playbook_files(["no/such/place.yaml"])
    assert files == []
    assert [m.text() for m in missing] == ["no/such/place.yaml:1:1: no such file or folder"]


def test_problems_are_sorted_by_position() -> None:
    text = (CORPUS / "invalid" / "09-unknown-top-key.yaml").read_text()
    result = load_text(text + "guards:\n  max_targets: 0\n", "x.yaml")
    assert [(p.line, p.path) for p in result.problems] == [
        (1, "(document)"), (7, "step"), (11, "guards.max_targets")]
