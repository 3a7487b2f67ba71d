"""Which files a playbook's ``script:`` may send to instances: inside the playbook's
folder (symlinks resolved), UTF-8 text, at most 60 KiB; `validate` says why not."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from remediate.actions.script_files import MAX_SCRIPT_BYTES
from remediate.language.loader import load_file

PLAYBOOK = """\
version: 1
name: repair
targets:
  kind: ec2-instance
  tags: {incident: crowdstrike}
steps:
  - id: fix
    action: ssm.run_command
    with:
      script: {script}
"""
OUTSIDE = ("  hint: copy the script into the playbook's folder (or a folder under it): a "
           "script is sent to instances and stays in SSM's command history")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An operator's home: credentials beside a folder of playbooks."""
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text("[default]\naws_secret_access_key=x\n")
    (tmp_path / "playbooks" / "scripts").mkdir(parents=True)
    return tmp_path


def problems(home: Path, script: str) -> list[str]:
    playbook = home / "playbooks" / "repair.yaml"
    playbook.write_text(PLAYBOOK.replace("{script}", script), encoding="utf-8")
    return [p.text() for p in load_file(playbook).problems]


def located(home: Path, script: str, message: str, hint: str = "") -> list[str]:
    where = f"{home}/playbooks/repair.yaml:10:15: steps[0].with.script: "
    return ["\n".join([where + message, f"          script: {script}",
                       "                  ^", *([hint] if hint else [])])]


def link_to_credentials(home: Path) -> str:
    os.symlink(home / ".aws" / "credentials", home / "playbooks" / "scripts" / "fix.ps1")
    return "scripts/fix.ps1"


def link_a_folder(home: Path) -> str:
    os.symlink(home / ".aws", home / "playbooks" / "scripts" / "aws")
    return "scripts/aws/credentials"


@pytest.mark.parametrize("make", [link_to_credentials, link_a_folder])
def test_a_symbolic_link_out_of_the_folder_is_refused(
        home: Path, make: Callable[[Path], str]) -> None:
    script = make(home)
    assert problems(home, script) == located(
        home, script, f"script {script} resolves through a symbolic link to "
                      f"{home}/.aws/credentials, outside the playbook's folder", OUTSIDE)


@pytest.mark.parametrize("script", ["../.aws/credentials", "scripts/../../.aws/credentials"])
def test_a_path_up_and_out_of_the_folder_is_refused(home: Path, script: str) -> None:
    assert problems(home, script) == located(
        home, script, f"script {script} is outside the playbook's folder", OUTSIDE)


def test_an_absolute_path_is_refused(home: Path) -> None:
    script = f"{home}/.aws/credentials"
    assert problems(home, script) == located(
        home, script, f"script {script} is an absolute path; expected a path relative to the "
                      "playbook's folder", OUTSIDE)


def test_a_link_that_stays_inside_the_folder_is_fine(home: Path) -> None:
    (home / "playbooks" / "scripts" / "real.ps1").write_text("hostname\n")
    os.symlink("real.ps1", home / "playbooks" / "scripts" / "fix.ps1")
    assert problems(home, "scripts/fix.ps1") == []


@pytest.mark.parametrize(("content", "message", "hint"), [
    (b"MZ\x90\x00\x03", "script scripts/fix.ps1 is not text: it holds a NUL byte (byte 3)",
     "  hint: is this the right file?"),
    (b"Write-Output 'caf\xe9'\n", "script scripts/fix.ps1 is not UTF-8 text (byte 17)",
     "  hint: save it as UTF-8"),
    (b"#" * (MAX_SCRIPT_BYTES + 1),
     "script scripts/fix.ps1 is 61,441 bytes; a script may be at most 61,440 bytes (SSM "
     "SendCommand takes at most 64 KB)",
     "  hint: keep the repair script short: install larger tools on the rescue image and "
     "call them from the script"),
], ids=["binary", "latin-1", "too-big"])
def test_a_script_that_is_not_short_utf8_text_is_refused(
        home: Path, content: bytes, message: str, hint: str) -> None:
    (home / "playbooks" / "scripts" / "fix.ps1").write_bytes(content)
    assert problems(home, "scripts/fix.ps1") == located(home, "scripts/fix.ps1", message, hint)


def test_a_script_of_exactly_the_cap_is_fine(home: Path) -> None:
    (home / "playbooks" / "scripts" / "fix.ps1").write_bytes(b"#" * MAX_SCRIPT_BYTES)
    assert problems(home, "scripts/fix.ps1") == []


def test_a_folder_is_not_a_script(home: Path) -> None:
    assert problems(home, "scripts") == located(
        home, "scripts", f"script scripts is not a file ({home}/playbooks/scripts)")
