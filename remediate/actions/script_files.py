"""Script files a playbook names (``script:``): what may be sent to instances through SSM.

A script travels in SendCommand's ``commands`` parameter and stays in the
command's history (ListCommandInvocations, the console) for anyone who may read
it, so only a file the playbook's author put beside the playbook may go: a
relative path that resolves, symlinks included, inside the playbook's folder,
to UTF-8 text without NUL bytes or ``${{ }}`` templates, small enough for one
SendCommand. ``validate`` and the step that sends the script apply the same
rules (the file may change between the two).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from remediate.actions.requests import StepFailed
from remediate.language.problems import Path, Problem
from remediate.language.schema import Choice, Field, Str
from remediate.language.template import TEMPLATE_RE, has_template

# SendCommand fails with MaxDocumentSizeExceeded: "The size limit of a document is 64 KB"
# (SSM API reference, SendCommand errors; botocore's ssm model). The script goes into
# the document's `commands` with the quoted variables remediate puts before it: 60 KiB
# for the file leaves 4 KiB for those.
MAX_SCRIPT_BYTES: Final = 60 * 1024
_OUTSIDE_HINT: Final = ("copy the script into the playbook's folder (or a folder under it): "
                        "a script is sent to instances and stays in SSM's command history")


class ScriptRefused(ValueError):
    """Why a script file may not be sent, and what to do instead."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def template_error(text: str, where: str) -> str | None:
    """Why ``text`` may not hold ``${{ }}`` templates, or None when it holds none."""
    if not has_template(text):
        return None
    found = TEMPLATE_RE.search(text)
    shown = found.group(0) if found else "${{"
    return (f"templates are not allowed in {where} (found {shown!r}): pass the value "
            "through parameters, which quotes it, and use the variable in the script")


def _located(base_dir: str, path: str) -> str:
    """The file ``path`` names, refused unless it is inside the playbook's folder."""
    if os.path.isabs(path):
        raise ScriptRefused(f"script {path} is an absolute path; expected a path relative "
                            "to the playbook's folder", _OUTSIDE_HINT)
    if os.path.normpath(path).split(os.sep)[0] == os.pardir:
        raise ScriptRefused(f"script {path} is outside the playbook's folder", _OUTSIDE_HINT)
    folder = os.path.realpath(base_dir)
    real = os.path.realpath(os.path.join(folder, path))
    if os.path.commonpath([folder, real]) != folder:
        raise ScriptRefused(f"script {path} resolves through a symbolic link to {real}, "
                            "outside the playbook's folder", _OUTSIDE_HINT)
    shown = os.path.normpath(os.path.join(base_dir, path))
    if not os.path.exists(real):
        raise ScriptRefused(f"script file {path} not found (looked for {shown})")
    if not os.path.isfile(real):
        raise ScriptRefused(f"script {path} is not a file ({shown})")
    return real


def load_script(base_dir: str, path: str) -> str:
    """The text of the script ``path`` (relative to ``base_dir``, the playbook's folder)
    names, BOM dropped; :class:`ScriptRefused` when it may not be sent."""
    real = _located(base_dir, path)
    try:
        with open(real, "rb") as handle:
            raw = handle.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise ScriptRefused(f"cannot read script {path}: {exc.strerror}") from None
    if len(raw) > MAX_SCRIPT_BYTES:
        size = os.path.getsize(real)
        raise ScriptRefused(
            f"script {path} is {size:,} bytes; a script may be at most "
            f"{MAX_SCRIPT_BYTES:,} bytes (SSM SendCommand takes at most 64 KB)",
            "keep the repair script short: install larger tools on the rescue image and "
            "call them from the script")
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ScriptRefused(f"script {path} is not text: it holds a NUL byte (byte {nul})",
                            "is this the right file?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScriptRefused(f"script {path} is not UTF-8 text (byte {exc.start})",
                            "save it as UTF-8") from None
    problem = template_error(text, f"script {path}")
    if problem:
        raise ScriptRefused(problem)
    return text


def script_problems(base_dir: str, path: str, at: Path) -> list[Problem]:
    """What ``validate`` says of the script ``path`` (at ``at`` under ``with``); nothing
    for a templated path, judged once its value is known."""
    if has_template(path):
        return []
    try:
        load_script(base_dir, path)
    except ScriptRefused as exc:
        return [Problem(at, exc.message, exc.hint)]
    return []


def read_script(base_dir: str, path: str) -> list[str]:
    """The script's lines, for the step that sends it; StepFailed when it may not be sent."""
    try:
        return load_script(base_dir, path).splitlines()
    except ScriptRefused as exc:
        raise StepFailed(exc.message) from None


SHELLS: Final = {".ps1": "powershell", ".sh": "sh"}


def shell_of(script: str, shell: str) -> str | None:
    """``shell`` ("powershell" or "sh"), or for "auto" the one ``script``'s extension
    names (None: it names none)."""
    if shell != "auto":
        return shell
    return SHELLS.get(os.path.splitext(script)[1].lower())


# The ``shell`` parameter of every action that sends a script file.
SHELL_FIELD: Final = Field(Choice(values=("auto", "powershell", "sh")), default="auto",
                           description="the script's shell; auto: by extension (.ps1, .sh)")


def script_field(default: str, description: str) -> Field:
    """The ``script`` parameter of an action that sends a script file: a path relative to
    the playbook's folder, ``default`` when not given."""
    return Field(Str(max_len=1024), default=default, description=description)


def script_shell_problems(base_dir: str, params: Mapping[str, Any],
                          default: str) -> list[Problem]:
    """What ``validate`` says of a step's ``script`` (``default`` when not given) and
    ``shell``: the file's own problems, and a shell that cannot be told."""
    script = params.get("script", default)
    if not isinstance(script, str):
        return []
    problems = script_problems(base_dir, script, ("script",))
    if shell_of(script, str(params.get("shell", "auto"))) is None:
        problems.append(Problem(("shell",), f"cannot tell the shell of {script} from its "
                                            "extension: set shell to powershell or sh"))
    return problems
