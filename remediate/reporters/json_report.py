"""The JSON report: the run model of :mod:`remediate.reporters.record`, as is."""

from __future__ import annotations

import json

from remediate.reporters.files import FileReport
from remediate.reporters.record import RunRecord


class JsonReport(FileReport):
    def render(self, record: RunRecord) -> str:
        return json.dumps(record.as_dict(), indent=2, ensure_ascii=False) + "\n"
