"""Durations as people write them: 90, 90s, 5m, 1h30m, 250ms."""

from __future__ import annotations

import re

DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d))+\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float | None:
    """Seconds, or None when ``text`` is not a duration."""
    stripped = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        return float(stripped)
    if not DURATION_RE.match(stripped):
        return None
    return sum(float(n) * _UNIT[unit] for n, unit in _PART.findall(stripped))


def format_duration(seconds: float) -> str:
    """Short human text, the one way every message and report says a duration:
    ``311ms``, ``4.2s``, ``45s``, ``3m12s``, ``1h02m``, ``48h``; exact for whole units.

    Precision follows size (a tenth of a second matters under 10 s, a second under a
    minute, a minute above an hour), so a sub-second step never prints as
    ``0.311326s``."""
    seconds = max(0.0, seconds)
    millis = round(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms" if millis else "0s"
    if round(seconds, 1) < 10:
        return f"{round(seconds, 1):g}s"
    if round(seconds) < 60:
        return f"{round(seconds)}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
