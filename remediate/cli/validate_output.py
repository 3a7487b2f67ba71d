"""Validation results as text, JSON, SARIF 2.1.0 or JUnit XML (for CI annotations)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from xml.etree import ElementTree as ET

from remediate import __version__
from remediate.language.loader import LoadResult
from remediate.language.problems import Located

FORMATS = ("text", "json", "sarif", "junit")


def _problems(results: Sequence[LoadResult]) -> list[Located]:
    return [p for r in results for p in r.problems]


def summary_line(results: Sequence[LoadResult]) -> str:
    bad = sum(1 for r in results if r.problems)
    count = len(_problems(results))
    noun = "playbook" if len(results) == 1 else "playbooks"
    if not bad:
        return f"{len(results)} {noun} valid"
    return (f"{len(results)} {noun} checked: {len(results) - bad} valid, {bad} invalid "
            f"({count} problem{'s' if count != 1 else ''})")


def as_text(results: Sequence[LoadResult]) -> str:
    lines = [p.text() for p in _problems(results)]
    lines.append(summary_line(results))
    return "\n".join(lines)


def _problem_dict(p: Located) -> dict[str, object]:
    return {"file": p.file, "line": p.line, "column": p.col, "path": p.path,
            "message": p.message, "hint": p.hint}


def as_json(results: Sequence[LoadResult]) -> str:
    return json.dumps({
        "valid": not _problems(results),
        "files": [{"file": r.source, "valid": not r.problems,
                   "problems": [_problem_dict(p) for p in r.problems]} for r in results],
    }, indent=2)


def as_sarif(results: Sequence[LoadResult]) -> str:
    sarif_results = [{
        "ruleId": "playbook",
        "level": "error",
        "message": {"text": f"{p.path}: {p.message}" + (f" (hint: {p.hint})" if p.hint else "")
                    if p.path else p.message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": p.file},
            "region": {"startLine": p.line, "startColumn": p.col},
        }}],
    } for p in _problems(results)]
    return json.dumps({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "remediate", "version": __version__,
                                "rules": [{"id": "playbook",
                                           "shortDescription": {"text": "invalid playbook"}}]}},
            "results": sarif_results,
        }],
    }, indent=2)


def as_junit(results: Sequence[LoadResult]) -> str:
    suite = ET.Element("testsuite", name="remediate validate", tests=str(len(results)),
                       failures=str(sum(1 for r in results if r.problems)))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="playbook", name=r.source)
        if r.problems:
            failure = ET.SubElement(case, "failure",
                                    message=f"{len(r.problems)} problem(s) in {r.source}")
            failure.text = "\n".join(p.text() for p in r.problems)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


RENDERERS = {"text": as_text, "json": as_json, "sarif": as_sarif, "junit": as_junit}
