from __future__ import annotations

import json
from pathlib import Path

from remediate.executor.events import Event
from remediate.reporters.json_report import JsonReport
from remediate.reporters.record import RunRecord


def test_the_file_holds_the_record_when_the_run_finishes(tmp_path: Path,
                                                         events: list[Event]) -> None:
    path = tmp_path / "run.json"
    record = RunRecord()
    record.writers.append(JsonReport(str(path)))
    for event in events[:-1]:
        record(event)
    assert not path.exists()
    record(events[-1])
    assert json.loads(path.read_text()) == record.as_dict()
    assert path.read_text().endswith("}\n")
