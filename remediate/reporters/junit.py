"""The JUnit XML report: CI systems show a run like a test suite.

One ``testsuite`` per run, one ``testcase`` per target (classname
``<account>.<region>``, name the target id). Failed, rolled-back and refused
targets carry a ``failure`` (its ``type`` is the status): the run exits 2 for
each, and a dashboard must not show it green. An interrupted target carries an
``error`` (``type="interrupted"``): it did not fail, it was not finished either
(``resume`` continues it). Skipped and never-started targets carry a ``skipped``.
The counts agree with the JSON summary: failures = failed + rolled back + refused,
errors = interrupted, skipped = skipped + not started. The step log (or a dry run's
plan) goes in ``system-out``. A dry run's planned targets pass; its refused ones
fail (``plan`` exits 2 for them too).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from remediate.reporters.files import FileReport
from remediate.reporters.record import RunRecord, TargetRecord, iso
from remediate.reporters.wording import finding_line, outcome, plan_line, step_line

FAILURE = frozenset({"failed", "rolled_back", "refused"})
ERROR = frozenset({"interrupted"})
SKIPPED = frozenset({"skipped", "pending"})
# Characters XML 1.0 cannot carry at all (AWS error texts sometimes hold them).
_INVALID_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("?", text)


def _system_out(record: TargetRecord) -> str:
    lines = [f"finding: {finding_line(f)}" for f in record.findings]
    lines += [step_line(step) for step in record.steps.values()]
    lines += [plan_line(plan) for plan in record.planned]
    return "\n".join(lines)


def _testcase(suite: ET.Element, record: TargetRecord) -> None:
    target = record.target
    case = ET.SubElement(suite, "testcase", classname=f"{target.account}.{target.region}",
                         name=target.id, time=f"{record.seconds:.3f}")
    why = _clean(outcome(record))
    if record.status in FAILURE | ERROR:
        tag = "failure" if record.status in FAILURE else "error"
        ET.SubElement(case, tag, message=why, type=record.status).text = why
    elif record.status in SKIPPED:
        ET.SubElement(case, "skipped", message=f"{record.status}: {why}")
    log = _system_out(record)
    if log:
        ET.SubElement(case, "system-out").text = _clean(log)


class JunitReport(FileReport):
    def render(self, record: RunRecord) -> str:
        targets = list(record.targets.values())
        failures = sum(1 for r in targets if r.status in FAILURE)
        errors = sum(1 for r in targets if r.status in ERROR)
        skipped = sum(1 for r in targets if r.status in SKIPPED)
        seconds = 0.0
        if record.started_at is not None and record.finished_at is not None:
            seconds = max(0.0, (record.finished_at - record.started_at).total_seconds())
        counts = {"tests": str(len(targets)), "failures": str(failures), "errors": str(errors),
                  "skipped": str(skipped), "time": f"{seconds:.3f}"}
        root = ET.Element("testsuites", {"name": "remediate", **counts})
        suite = ET.SubElement(root, "testsuite", {"name": _clean(record.playbook), **counts})
        started = iso(record.started_at)
        if started is not None:
            suite.set("timestamp", started.removesuffix("Z"))  # JUnit's schema: no zone; UTC
        props = ET.SubElement(suite, "properties")
        for name, value in (("run_id", record.run_id), ("dry_run", str(record.dry_run).lower())):
            ET.SubElement(props, "property", name=name, value=_clean(value))
        for target in targets:
            _testcase(suite, target)
        ET.indent(root)
        return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
