"""Issue 13, section 4: after SIGKILL + `resume`, every report describes the whole run
as the journal has it (not only the resume's part), and they agree with each other.

A real run (a subprocess) against a sandbox server, one target refused (stop
protection), killed after two targets were fixed; `resume` writes JSON, JUnit,
Markdown and HTML, and prints the console summary.
"""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR
from e2e_support import SandboxServer, journal_rows, remediate, wait_for
from report_checks import console_counts, junit_statuses

RUN_TIMEOUT = 90.0


@pytest.mark.slow
def test_after_sigkill_and_resume_every_report_agrees_with_the_journal(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=4)
    protected = server.instance_ids[-1]
    server.client("ec2").modify_instance_attribute(InstanceId=protected,
                                                   DisableApiStop={"Value": True})
    env = server.env(tmp_path / "crashes")
    journal = tmp_path / "journal.sqlite"
    # One target at a time, so the journal passes through "two fixed" (after the canary,
    # the shipped ramp starts the rest together, and they may finish in one commit).
    run = remediate(["run", OFFLINE_REPAIR, "--yes", "--no-progress", *server.rescue_param,
                     "--concurrency", "1", "--journal", str(journal)], env, tmp_path / "run.log")
    wait_for(lambda: journal_rows(journal, "SELECT COUNT(*) FROM targets WHERE "
                                           "status = 'succeeded'") == [(2,)],
             RUN_TIMEOUT, "two targets fixed")
    run.process.send_signal(signal.SIGKILL)
    run.process.wait()
    reports = {name: tmp_path / f"run.{name}" for name in ("json", "xml", "md", "html")}

    resumed = remediate(["resume", str(journal), "--no-progress",
                         "--report", f"json:{reports['json']}",
                         "--report", f"junit:{reports['xml']}",
                         "--report", f"md:{reports['md']}",
                         "--report", f"html:{reports['html']}"], env, tmp_path / "resume.log")
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
    assert "**4 targets: 3 fixed, 1 refused.**" in reports["md"].read_text(encoding="utf-8")
    assert console_counts(resumed.stderr(), run_id) == dict(Counter(journaled.values()))
    # The HTML report draws the whole run too: the targets fixed before the kill included.
    [drawn] = re.findall(r'<script type="application/json" id="run-data">(.*?)</script>',
                         reports["html"].read_text(encoding="utf-8"), re.DOTALL)
    html = json.loads(drawn)
    assert {f"{t['account']}/{t['region']}/{t['id']}": t["status"]
            for t in html["targets"]} == journaled
    assert all(t["finished"] is not None for t in html["targets"] if t["status"] == "succeeded")
    assert set(html["step_durations"]) >= {"backup", "stop", "repair", "verify"}
