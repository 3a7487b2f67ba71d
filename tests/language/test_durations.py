from __future__ import annotations

import pytest

from remediate.language.durations import format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25),
    ("1.5h", 5400.0), ("2d", 172800.0), ("five minutes", None), ("5 parsecs", None), ("", None),
])
def test_parse(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_format() -> None:
    assert [format_duration(s) for s in (0.25, 5, 90, 300, 3725, 172800)] == [
        "0.25s", "5s", "1m30s", "5m", "1h02m", "48h"]
