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
        "250ms", "5s", "1m30s", "5m", "1h02m", "48h"]


@pytest.mark.parametrize(("seconds", "text"), [
    (0.311326, "311ms"), (0.0, "0s"), (0.0004, "0s"), (0.9996, "1s"), (4.2, "4.2s"),
    (4.25, "4.2s"), (9.96, "10s"), (45.4, "45s"), (59.6, "1m"), (192.3, "3m12s"),
    (3599.6, "1h"), (3719, "1h02m"), (-3, "0s"),
])
def test_format_is_as_precise_as_the_size_needs(seconds: float, text: str) -> None:
    """Issue 16: a sub-second step printed as ``0.311326s``."""
    assert format_duration(seconds) == text
