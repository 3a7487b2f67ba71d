"""The journal's size and fsyncs per target on a sandbox run: deterministic measures, no
timing. Growth between two fleet sizes, so the run's fixed part (the playbook's text,
the repair script stored once, the tables' first pages) is left out."""

from __future__ import annotations

from pathlib import Path

from journal_size import measure
from remediate.sandbox import Durations

BYTES_PER_TARGET = 17_500
"""Issue 15 asks for 5,000 (5 MB per 1,000 targets); what is left is per-call rows:
see benchmarks/RESULTS.md. Before the script and merged answers were kept once: ~30,000.
Holding capacity across the stop (issue 18) added three calls per target: ~16,000 before,
~17,000 with it."""
COMMITS_PER_TARGET = 5.0


def test_the_journal_of_an_offline_repair_grows_within_its_budget(tmp_path: Path) -> None:
    small_size, small_commits, _ = measure(10, tmp_path / "small", Durations())
    large_size, large_commits, _ = measure(30, tmp_path / "large", Durations())

    per_target = (large_size - small_size) / 20
    assert per_target <= BYTES_PER_TARGET, per_target
    assert (large_commits - small_commits) / 20 <= COMMITS_PER_TARGET
