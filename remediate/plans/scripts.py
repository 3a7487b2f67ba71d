"""The script files an approved plan pins: a plan's playbook text is not the whole program.

A step's ``script:`` (the offline repair's PowerShell, an ``ssm.run_command``
script) is read from the playbook's folder when the step runs. A plan keeps the
sha256 of each script its steps would send, and ``run --plan`` refuses to start
if one changed since: what runs on the rescue instances is what was approved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from remediate.actions import registry
from remediate.actions.script_files import ScriptRefused, load_script
from remediate.language.model import Playbook
from remediate.language.schema import MISSING, Record
from remediate.language.template import TemplateError, render

SCRIPT_PARAM: Final = "script"


def script_hashes(playbook: Playbook, params: Mapping[str, Any], folder: str) -> dict[str, str]:
    """Script path (as the step names it) -> sha256 of its text, for every step and
    rollback step with a script (its action's default included). A script that cannot be
    read is left out: loading the playbook has reported it already."""
    hashes: dict[str, str] = {}
    for step in (*playbook.steps, *playbook.rollback):
        path = _script_path(step.action, step.params, params)
        if path is None or path in hashes:
            continue
        try:
            text = load_script(folder, path)
        except ScriptRefused:
            continue
        hashes[path] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return hashes


def _script_path(action_name: str, with_: Mapping[str, Any],
                 params: Mapping[str, Any]) -> str | None:
    action = registry.get(action_name)
    schema = action.params if action is not None else None
    field = schema.fields.get(SCRIPT_PARAM) if isinstance(schema, Record) else None
    if field is None:
        return None
    value = with_.get(SCRIPT_PARAM, field.default)
    if value is MISSING:
        return None
    try:
        value = render(value, {"params": dict(params)})
    except TemplateError:
        return None
    return value if isinstance(value, str) else None


def changed_scripts(pinned: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """``script PATH changed since ... (sha256 OLD... then, NEW... now)``, one per script."""
    out = []
    for path, sha in sorted(pinned.items()):
        found = now.get(path)
        if found != sha:
            shown = f"{found[:12]}..." if found else "unreadable"
            out.append(f"script {path} changed since the plan was approved (sha256 "
                       f"{sha[:12]}... then, {shown} now)")
    return out
