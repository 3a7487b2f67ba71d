"""The approved plan: the JSON file `remediate plan --out` writes and `run --plan` applies.

A plan is what an incident commander signs: which targets, as inspection read
them, with which playbook text, parameter values and accepted findings, planned
by whom and when. `run --plan` runs exactly that: the playbook text saved here
(not the file as it is now), these parameters and acceptances, these targets
and no other (no discovery: a machine tagged since is not in it). The format is
versioned (``format_version``); a reader refuses any version but its own, in one
line, rather than guess. The keys are documented in README.md (*Approved plans and
retries*)::

    format: "remediate-plan", format_version: 1, remediate_version,
    planned_by: "user@host", planned_at: ISO 8601 UTC, plan_run_id,
    playbook: {path, folder, sha256, text, scripts: {path: sha256}}, params: {...},
    accepted: [...],
    profile, selection: {target_ids, tags, filters, regions, limit},
    selecting_tags: [...], summary: {approved, not_approved},
    targets: [{kind, id, region, account, status, approved, reason,
               pinned: {...}, facts: {...}, findings: [{kind, severity, detail}]}]
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from remediate import __version__
from remediate.actions.contract import Target
from remediate.errors import UserError
from remediate.kinds import KINDS

FORMAT: Final = "remediate-plan"
FORMAT_VERSION: Final = 1
# The plan's verdict on a target that the run may work on (the dry run's "planned").
APPROVED_STATUS: Final = "planned"
HINT: Final = "plan again: remediate plan PLAYBOOK --out FILE"


class PlanFileError(UserError):
    """A plan file that cannot be applied: one line, exit 1, nothing changed in AWS."""


@dataclass(frozen=True)
class PlannedTarget:
    target: Target
    status: str  # the dry run's: planned, refused, skipped
    pinned: Mapping[str, Any]  # see remediate.plans.drift
    facts: Mapping[str, Any] = field(default_factory=dict)
    findings: tuple[Mapping[str, str], ...] = ()
    reason: str | None = None  # why it was refused or skipped

    @property
    def approved(self) -> bool:
        return self.status == APPROVED_STATUS

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        return {"kind": t.kind, "id": t.id, "region": t.region, "account": t.account,
                "status": self.status, "approved": self.approved, "reason": self.reason,
                "pinned": dict(self.pinned), "facts": dict(self.facts),
                "findings": [dict(f) for f in self.findings]}


@dataclass(frozen=True)
class Plan:
    playbook_path: str
    playbook_folder: str  # absolute: where its script files are read from
    playbook_text: str
    params: Mapping[str, Any]
    accepted: frozenset[str]
    targets: tuple[PlannedTarget, ...]
    planned_by: str
    planned_at: str
    plan_run_id: str
    profile: str | None = None
    selection: Mapping[str, Any] = field(default_factory=dict)
    selecting_tags: tuple[str, ...] = ()
    scripts: Mapping[str, str] = field(default_factory=dict)  # path -> sha256 of its text
    remediate_version: str = __version__

    @property
    def playbook_sha256(self) -> str:
        return text_sha256(self.playbook_text)

    @property
    def approved(self) -> list[PlannedTarget]:
        return [t for t in self.targets if t.approved]

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "remediate_version": self.remediate_version,
            "planned_by": self.planned_by, "planned_at": self.planned_at,
            "plan_run_id": self.plan_run_id,
            "playbook": {"path": self.playbook_path, "folder": self.playbook_folder,
                         "sha256": self.playbook_sha256, "text": self.playbook_text,
                         "scripts": dict(self.scripts)},
            "params": dict(self.params), "accepted": sorted(self.accepted),
            "profile": self.profile, "selection": dict(self.selection),
            "selecting_tags": list(self.selecting_tags),
            "summary": {"approved": len(self.approved),
                        "not_approved": len(self.targets) - len(self.approved)},
            "targets": [t.as_dict() for t in self.targets],
        }

    def to_json(self) -> str:
        # default=str: a fact AWS gave as a date or a decimal is kept as its text.
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False, default=str) + "\n"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def planner() -> str:
    """``user@host``: who planned, as the audit trail names them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def iso_utc(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# ---- reading ------------------------------------------------------------------------------


def read_plan(path: str) -> Plan:
    """The plan saved at ``path``; a PlanFileError (one line: the file, what is wrong,
    the hint to plan again) for anything unreadable, malformed or of another version."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"--plan {path}: cannot read it ({_reason(exc)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); "
                            f"a plan is written by `remediate plan PLAYBOOK --out {path}`"
                            ) from None
    return _Reader(path).plan(data)


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


@dataclass
class _Reader:
    """Checks each key as it takes it, so an error names the key path (``targets[3].id``)."""

    path: str

    def fail(self, where: str, expected: str, found: Any) -> PlanFileError:
        shown = json.dumps(found)[:60] if not isinstance(found, _Missing) else "nothing"
        return PlanFileError(f"{self.path}: {where}: expected {expected}, found {shown}; "
                             f"{HINT}")

    def take(self, data: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
             expected: str, where: str = "", optional: bool = False) -> Any:
        value = data.get(key, _MISSING)
        if optional and value in (None, _MISSING):
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.fail(f"{where}{key}", expected, value)
        return value

    def plan(self, data: Any) -> Plan:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PlanFileError(f"{self.path}: not a remediate plan (expected a JSON object "
                                f"with \"format\": \"{FORMAT}\"); {HINT}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise PlanFileError(f"{self.path}: plan format version {json.dumps(version)}; this "
                                f"remediate ({__version__}) applies version {FORMAT_VERSION} "
                                f"only; {HINT} with this remediate")
        book = self.take(data, "playbook", dict, "an object {path, folder, sha256, text}")
        text = self.take(book, "text", str, "the playbook's text", "playbook.")
        sha = self.take(book, "sha256", str, "the sha256 of playbook.text", "playbook.")
        if text_sha256(text) != sha:
            raise PlanFileError(f"{self.path}: playbook.text does not match playbook.sha256 "
                                f"(the plan was edited after it was written); {HINT}")
        raw_targets = self.take(data, "targets", list, "a list of targets")
        return Plan(
            playbook_path=self.take(book, "path", str, "a path", "playbook."),
            playbook_folder=self.take(book, "folder", str, "a folder", "playbook."),
            playbook_text=text,
            params=self.take(data, "params", dict, "an object of parameter values"),
            accepted=frozenset(self._strings(data, "accepted")),
            targets=tuple(self._target(t, f"targets[{i}].") for i, t in enumerate(raw_targets)),
            planned_by=self.take(data, "planned_by", str, "user@host"),
            planned_at=self.take(data, "planned_at", str, "an ISO 8601 time"),
            plan_run_id=self.take(data, "plan_run_id", str, "the dry run's id"),
            profile=self.take(data, "profile", str, "a profile name or null", optional=True),
            selection=self.take(data, "selection", dict, "an object", optional=True) or {},
            selecting_tags=tuple(self._strings(data, "selecting_tags")),
            scripts=self._scripts(book),
            remediate_version=self.take(data, "remediate_version", str, "a version"))

    def _strings(self, data: Mapping[str, Any], key: str, where: str = "") -> Sequence[str]:
        values = self.take(data, key, list, "a list of strings", where)
        if not all(isinstance(v, str) for v in values):
            raise self.fail(f"{where}{key}", "a list of strings", values)
        return values

    def _scripts(self, book: Mapping[str, Any]) -> dict[str, str]:
        scripts = self.take(book, "scripts", dict, "an object: script path -> sha256",
                            "playbook.")
        if not all(isinstance(v, str) for v in scripts.values()):
            raise self.fail("playbook.scripts", "an object: script path -> sha256", scripts)
        return dict(scripts)

    def _target(self, data: Any, where: str) -> PlannedTarget:
        if not isinstance(data, dict):
            raise self.fail(where.rstrip("."), "an object", data)
        kind = self.take(data, "kind", str, f"one of {', '.join(KINDS)}", where)
        if kind not in KINDS:
            raise self.fail(f"{where}kind", f"one of {', '.join(KINDS)}", kind)
        target = Target(kind, self.take(data, "id", str, "a target id", where),
                        self.take(data, "region", str, "a Region", where),
                        self.take(data, "account", str, "an account label", where))
        findings = self.take(data, "findings", list, "a list of findings", where)
        return PlannedTarget(
            target, self.take(data, "status", str, "planned, refused or skipped", where),
            self.take(data, "pinned", dict, "an object of pinned facts", where),
            self.take(data, "facts", dict, "an object of facts", where),
            tuple(f for f in findings if isinstance(f, dict)),
            self.take(data, "reason", str, "a string or null", where, optional=True))


class _Missing:
    pass


_MISSING: Final = _Missing()
