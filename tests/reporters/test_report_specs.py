from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from remediate.cli.exitcodes import UserError
from remediate.executor.events import Event
from remediate.reporters import ReportSpec, ReportSpecError, from_specs, parse_spec


def test_specs_name_a_format_and_a_path() -> None:
    assert parse_spec("junit:out/run.xml") == ReportSpec("junit", "out/run.xml")
    assert parse_spec("md:C:/reports/run.md") == ReportSpec("md", "C:/reports/run.md")
    assert parse_spec("json:-") == ReportSpec("json", "-")


@pytest.mark.parametrize(("spec", "message"), [
    ("pdf:out.pdf", "unknown report format 'pdf' in 'pdf:out.pdf': use json:PATH, "
                    "junit:PATH, md:PATH, html:PATH"),
    ("run.json", "unknown report format 'run.json' in 'run.json': use json:PATH, junit:PATH, "
                 "md:PATH, html:PATH"),
    ("json", "report 'json' has no path: use json:PATH"),
    ("md:", "report 'md:' has no path: use md:PATH"),
])
def test_bad_specs_are_one_line_user_errors(spec: str, message: str) -> None:
    with pytest.raises(ReportSpecError) as caught:
        parse_spec(spec)
    assert str(caught.value) == message
    assert isinstance(caught.value, UserError)


def test_a_bad_spec_fails_before_any_report_is_set_up() -> None:
    with pytest.raises(ReportSpecError, match="'xml'"):
        from_specs(["json:a.json", "xml:b.xml"])


def test_every_report_is_written_when_the_run_finishes(tmp_path: Path,
                                                       events: list[Event]) -> None:
    paths = {fmt: tmp_path / f"run.{fmt}" for fmt in ("json", "junit", "md")}
    record = from_specs([f"{fmt}:{path}" for fmt, path in paths.items()])
    for event in events:
        record(event)
    assert json.loads(paths["json"].read_text())["run_id"] == "run-1"
    assert ET.parse(paths["junit"]).getroot()[0].get("tests") == "5"
    assert paths["md"].read_text().startswith("# remediate run: ec2-offline-repair\n")
