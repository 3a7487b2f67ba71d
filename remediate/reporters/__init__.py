"""Reporters: subscribers to the executor's events.

``from_specs(["json:out/run.json", "junit:out/run.xml", "md:out/run.md",
"html:out/run.html"])`` gives
one :class:`RunRecord` (subscribe it to the event bus) that writes each report
when the run finishes. The terminal reporter is
:class:`remediate.reporters.terminal.TerminalReporter` (imported on its own: it
pulls in rich).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from remediate.destinations import check_destination
from remediate.errors import UserError
from remediate.reporters.files import FileReport
from remediate.reporters.html import HtmlReport
from remediate.reporters.json_report import JsonReport
from remediate.reporters.junit import JunitReport
from remediate.reporters.markdown import MarkdownReport
from remediate.reporters.record import RunRecord

FORMATS: Final[Mapping[str, type[FileReport]]] = MappingProxyType({
    "json": JsonReport,
    "junit": JunitReport,
    "md": MarkdownReport,
    "html": HtmlReport,
})


class ReportSpecError(UserError):
    pass


@dataclass(frozen=True)
class ReportSpec:
    format: str
    path: str  # "-" is standard output


def parse_spec(text: str) -> ReportSpec:
    """``FORMAT:PATH``, e.g. ``junit:reports/run.xml``."""
    usage = "use " + ", ".join(f"{name}:PATH" for name in FORMATS)
    name, sep, path = text.partition(":")
    if name not in FORMATS:
        raise ReportSpecError(f"unknown report format {name!r} in {text!r}: {usage}")
    if not sep or not path:
        raise ReportSpecError(f"report {text!r} has no path: use {name}:PATH")
    return ReportSpec(name, path)


def checked_specs(specs: Iterable[str], journal: str | None = None) -> list[ReportSpec]:
    """Every spec parsed, and its file known to be writable (before any AWS call): a
    report that cannot be written fails the command now, not after the run. Two reports
    (or a report and the run's ``journal``) on one file are refused: the last one
    written would replace the other."""
    parsed = [parse_spec(text) for text in specs]
    taken = {} if journal is None else {os.path.realpath(journal): f"--journal {journal}"}
    for spec in parsed:
        option = f"--report {spec.format}:{spec.path}"
        key = spec.path if spec.path == "-" else os.path.realpath(spec.path)
        if key in taken:
            raise ReportSpecError(f"{option} writes the same file as {taken[key]}: give "
                                  "each report its own path")
        taken[key] = option
        if spec.path != "-":
            check_destination(spec.path, option)
    return parsed


def from_specs(specs: Iterable[str], journal: str | None = None) -> RunRecord:
    """A record that writes every report named in ``specs`` when the run ends.

    All specs are checked first (:func:`checked_specs`, with the run's ``journal``), so
    a typo or a folder that cannot be written fails before the run starts.
    """
    record = RunRecord()
    for spec in checked_specs(specs, journal):
        record.writers.append(FORMATS[spec.format](spec.path))
    return record


__all__ = ["FORMATS", "FileReport", "ReportSpec", "ReportSpecError", "RunRecord",
           "checked_specs", "from_specs", "parse_spec"]
