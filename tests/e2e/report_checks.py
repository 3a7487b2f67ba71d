"""Reading back what a `remediate` process reported (JSON, JUnit, Markdown, the console's
summary line), each as target key -> status, to hold it against the journal's statuses."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from e2e_support import journal_rows

REPORT_FORMATS = {"json": "json", "junit": "xml", "md": "md"}
# The Markdown report's headline (``**8 targets: 1 fixed, 1 rolled back, 5 refused.**``): its
# words for the journal's statuses. It lists targets only by group (ten ids of many alike),
# so it is held against the journal by its counts.
MARKDOWN_WORDS = {"fixed": "succeeded", "failed": "failed", "rolled back": "rolled_back",
                  "interrupted": "interrupted", "refused": "refused", "skipped": "skipped",
                  "not started": "pending"}
_HEADLINE = re.compile(r"^\*\*\d+ targets?: (.*)\.\*\*$", re.MULTILINE)


def report_options(folder: Path, name: str) -> tuple[list[str], dict[str, Path]]:
    """``--report`` options writing every format into ``folder`` as ``name.*``, and the paths."""
    paths = {kind: folder / f"{name}.{suffix}" for kind, suffix in REPORT_FORMATS.items()}
    return [f"--report={kind}:{path}" for kind, path in paths.items()], paths


def json_statuses(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {f"{t['account']}/{t['region']}/{t['id']}": t["status"] for t in data["targets"]}


def junit_statuses(path: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname', '').replace('.', '/')}/{case.get('name')}"
        failure, skipped = case.find("failure"), case.find("skipped")
        failure = failure if failure is not None else case.find("error")
        if failure is not None:
            out[key] = str(failure.get("type"))
        elif skipped is not None:
            out[key] = str(skipped.get("message")).split(":")[0]
        else:
            out[key] = "succeeded"
    return out


def markdown_counts(path: Path) -> dict[str, int]:
    """The Markdown report's headline as status -> count (a count of 0 left out)."""
    [said] = _HEADLINE.findall(path.read_text(encoding="utf-8"))
    counts = {}
    for part in said.split(", "):
        count, word = re.sub(r" \(.*\)$", "", part).split(" ", 1)
        if int(count):
            counts[MARKDOWN_WORDS[word]] = int(count)
    return counts


def console_counts(stderr: str, run_id: str) -> dict[str, int]:
    """``run R finished: 3 succeeded, 1 refused`` -> {"succeeded": 3, "refused": 1}."""
    [summary] = re.findall(rf"^run {run_id} finished: (.*)$", stderr, re.MULTILINE)
    return {status.replace(" ", "_"): int(count)
            for count, status in (part.split(" ", 1) for part in summary.split(", "))}


def journaled_statuses(journal: Path) -> dict[str, str]:
    """Target key -> status, as the journal has it (None: no status yet)."""
    return dict(journal_rows(journal, "SELECT target_key, status FROM targets"))


def disagreements(journal: Path, reports: dict[str, Path], stderr: str) -> list[str]:
    """Where a report written by a process that has ended says other than its journal."""
    journaled = journaled_statuses(journal)
    [(run_id,)] = journal_rows(journal, "SELECT run_id FROM runs")
    found = {"JSON": json_statuses(reports["json"]), "JUnit": junit_statuses(reports["junit"])}
    out = [f"{name} report: {_differences(statuses, journaled)}"
           for name, statuses in found.items() if statuses != journaled]
    counted = dict(Counter(journaled.values()))
    for name, counts in (("console summary", console_counts(stderr, run_id)),
                         ("Markdown headline", markdown_counts(reports["md"]))):
        if counts != counted:
            out.append(f"{name} {counts}, journal {counted}")
    return out


def _differences(reported: dict[str, str], journaled: dict[str, str]) -> str:
    keys = sorted(set(reported) | set(journaled))
    return ", ".join(f"{k}: {reported.get(k)} (journal: {journaled.get(k)})" for k in keys
                     if reported.get(k) != journaled.get(k))
