"""The HTML report: its data (from the run's events), and the page as a real browser
draws it (headless Chromium; skipped, saying why, where none is installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from remediate.actions.contract import Target
from remediate.executor.events import (
    AlarmStopped,
    ApiRetrying,
    Event,
    StepRetrying,
    TargetFinished,
    TargetInspected,
)
from remediate.reporters import from_specs
from remediate.reporters.html import page
from remediate.reporters.html_data import report_data
from remediate.reporters.record import RunRecord

BROWSER = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                if (found := shutil.which(name))), None)
HOSTILE = "</script><script>document.title='owned'</script>"
RETRIED_AT = datetime(2024, 7, 19, 5, 30, 5, tzinfo=UTC)  # 5 s into conftest's run


def timed(events: list[Event], record: RunRecord | None = None) -> RunRecord:
    """conftest's run with every outcome, fed to ``record``: its retries timed, a zone for
    i-ok, the alarm that stopped it, and a target whose error is HTML."""
    record = record or RunRecord()
    ok = Target("ec2-instance", "i-ok", "us-east-1")
    zone = TargetInspected(ok, {"state": "running", "availability_zone": "us-east-1a"}, ())
    stopped = AlarmStopped("fleet-5xx", "default", "us-east-1", "is in ALARM: 5xx", 2)
    for event in [*events[:2], zone, *events[2:-1], stopped, events[-1]]:
        if isinstance(event, StepRetrying | ApiRetrying):
            event = replace(event, at=RETRIED_AT)
        if isinstance(event, TargetFinished) and event.target.id == "i-skip":
            event = replace(event, error=HOSTILE)
        record(event)
    return record


def test_the_data_holds_what_the_charts_draw(events: list[Event]) -> None:
    data = report_data(timed(events))

    assert data["duration"] == 1000.0 and data["took"] == "16m40s"
    assert [(t["id"], t["status"], t["where"], t["finished"]) for t in data["targets"]] == [
        ("i-ok", "succeeded", "default / us-east-1a", 181.0),
        ("i-bad", "failed", "default / us-east-1", 20.0),
        ("i-rb", "rolled_back", "default / eu-west-1", 992.0),
        ("i-ref", "refused", "default / us-east-1", None),
        ("i-skip", "skipped", "default / us-east-1", 3.0),
    ]
    # Finished steps of the fix, not rollback's, nor the skipped one.
    assert data["step_durations"] == {"stop": [60.0, 19.0, 60.0], "start": [120.0, 900.0]}
    assert data["retries"] == [[5.0, "step"], [5.0, "throttled"], [5.0, "api"]]
    assert data["retry_totals"] == {"steps": 1, "api": 2, "throttled": 1}
    assert data["notes"]["alarm"] == ("Stopped by alarm fleet-5xx (default/us-east-1) is in "
                                      "ALARM: 5xx: no new targets were started.")


def test_the_page_is_one_file_that_names_no_url_and_keeps_html_in_data_inert(
        events: list[Event]) -> None:
    html = page(timed(events))

    assert not re.search(r"https?:", html)
    assert "<link" not in html and " src=" not in html
    assert "default-src 'none'" in html  # the browser may fetch nothing at all
    assert HOSTILE not in html and "\\u003c/script\\u003e" in html


def test_html_is_a_report_format(tmp_path: Path, events: list[Event]) -> None:
    timed(events, from_specs([f"html:{tmp_path}/run.html"]))
    assert (tmp_path / "run.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


class Dom(HTMLParser):
    """The elements of a page, as (tag, attributes), in order; the text of #errors."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.errors = ""
        self.text = ""
        self._in_errors = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_errors = dict(attrs).get("id") == "errors"

    def handle_endtag(self, tag: str) -> None:
        self._in_errors = False

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._in_errors:
            self.errors += data

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.elements
                if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def drawn(page_file: Path, profile: Path) -> tuple[Dom, str]:
    """The page's DOM once its script ran, and the browser's console lines."""
    assert BROWSER is not None
    done = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom",
         page_file.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    console = "\n".join(line for line in done.stderr.splitlines() if ":CONSOLE" in line)
    return Dom(done.stdout), console


@pytest.mark.skipif(BROWSER is None, reason="no headless browser: `apt-get install -y chromium` "
                                            "(.ci/run installs it where it can)")
def test_a_browser_draws_every_chart_and_a_row_per_target(tmp_path: Path,
                                                          events: list[Event]) -> None:
    record = timed(events)
    report = tmp_path / "run.html"
    report.write_text(page(record), encoding="utf-8")

    dom, console = drawn(report, tmp_path / "profile")

    assert console == ""  # no script error, no request the page's policy refused
    assert dom.errors == ""
    [body] = dom.all("body")
    assert body["data-rendered"] == "ok"
    assert [a["data-chart"] for a in dom.all("svg")] == [
        "fixed-over-time", "step-durations", "retries-over-time", "outcome-per-place"]
    assert {a["data-series"] for a in dom.all("path")} == {"succeeded", "failed", "rolled_back"}
    assert [a["data-step"] for a in dom.all("g")] == ["stop", "start"]
    assert {a["data-kind"] for a in dom.all("rect") if "data-kind" in a} == {
        "throttled", "api", "step"}
    assert sorted(a["data-status"] or "" for a in dom.all("rect") if "data-status" in a) == [
        "failed", "refused", "rolled_back", "skipped", "succeeded"]
    rows = [a["data-status"] for a in dom.all("tr") if "data-status" in a]
    assert len(rows) == len(record.targets) == 5
    assert rows[0] == "failed" and rows[-1] == "succeeded"  # worst first
    # The target's error that looks like HTML stayed text: shown, never run.
    assert [tag for tag, _ in dom.elements].count("script") == 2
    assert HOSTILE in dom.text and "owned" not in dom.text.split(HOSTILE)[0]
