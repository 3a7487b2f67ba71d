"""Issue 13, section 4: after SIGKILL + `resume`, every report describes the whole run
as the journal has it (not only the resume's part), and they agree with each other.

A real run (a subprocess) against a sandbox server, one target refused (stop
protection), killed after two targets were fixed; `resume` writes JSON, JUnit and
Markdown, and prints the console summary.
"""

from __future__ import annotations

import json
import re
import signal
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR
from e2e_support import SandboxServer, journal_rows, remediate, wait_for

RUN_TIMEOUT = 90.0


def junit_statuses(path: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        key = f"{case.get('classname', '').replace('.', '/')}/{case.get('name')}"
        failure, skipped = case.find("failure"), case.find("skipped")
        if failure is not None:
            out[key] = str(failure.get("type"))
        elif skipped is not None:
            out[key] = str(skipped.get("message")).split(":")[0]
        else:
            out[key] = "succeeded"
    return out


def console_counts(stderr: str, run_id: str) -> dict[str, int]:
    """``run R finished: 3 succeeded, 1 refused`` -> {"succeeded": 3, "refused": 1}."""
    [summary] = re.findall(rf"^run {run_id} finished: (.*)$", stderr, re.MULTILINE)
    return {status.replace(" ", "_"): int(count)
            for count, status in (part.split(" ", 1) for part in summary.split(", "))}


@pytest.mark.slow
def test_after_sigkill_and_resume_every_report_agrees_with_the_journal(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=4)
    protected = server.instance_ids[-1]
    server.client("ec2").modify_instance_attribute(InstanceId=protected,
                                                   DisableApiStop={"Value": True})
    env = server.env(tmp_path / "crashes")
    journal = tmp_path / "journal.sqlite"
    run = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress", *server.rescue_param,
                     "--journal", str(journal)], env, tmp_path / "run.log")
    wait_for(lambda: journal_rows(journal, "SELECT COUNT(*) FROM targets WHERE "
                                           "status = 'succeeded'") == [(2,)],
             RUN_TIMEOUT, "two targets fixed")
    run.process.send_signal(signal.SIGKILL)
    run.process.wait()
    reports = {name: tmp_path / f"run.{name}" for name in ("json", "xml", "md")}

    resumed = remediate(["resume", str(journal), "--no-progress",
                         "--report", f"json:{reports['json']}",
                         "--report", f"junit:{reports['xml']}",
                         "--report", f"md:{reports['md']}"], env, tmp_path / "resume.log")
    assert resumed.finish(RUN_TIMEOUT) == 2, resumed.stderr()[-3000:]  # one refused

    [(run_id,)] = journal_rows(journal, "SELECT run_id FROM runs")
    journaled = dict(journal_rows(journal, "SELECT target_key, status FROM targets"))
    assert Counter(journaled.values()) == {"succeeded": 3, "refused": 1}
    data = json.loads(reports["json"].read_text(encoding="utf-8"))
    assert {f"{t['account']}/{t['region']}/{t['id']}": t["status"]
            for t in data["targets"]} == journaled
    assert all(t["steps"] for t in data["targets"] if t["status"] == "succeeded")
    [refused] = [t for t in data["targets"] if t["status"] == "refused"]
    assert refused["id"] == protected
    assert "stop-protection" in {f["kind"] for f in refused["findings"]}
    summary = data["summary"]
    assert (summary["succeeded"], summary["refused"], summary["total"]) == (3, 1, 4)
    assert junit_statuses(reports["xml"]) == journaled
    assert ("**4 targets: 3 fixed, 0 failed, 0 rolled back, 1 skipped** (1 refused, "
            "0 interrupted, 0 not started).") in reports["md"].read_text(encoding="utf-8")
    assert console_counts(resumed.stderr(), run_id) == dict(Counter(journaled.values()))
