"""How big the journal of a fleet run grows, and how many commits (fsyncs) it makes.

    python benchmarks/journal_size.py                 # offline repair, 200 targets
    python benchmarks/journal_size.py --targets 1000

Runs the shipped offline-repair playbook (one rollout batch) over a broken sandbox fleet
on a simulated clock, with a journal file, then prints its size per 1,000 targets, the
bytes each table and column holds, and the commits per target (each commit is one fsync
of the write-ahead log, ``synchronous=FULL``).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

from fleetbench.scenarios import Scenario, Setup, load, params_for, prepare, throttle_policy
from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus
from remediate.journal import Journal
from remediate.sandbox import Durations, Sandbox


def measure(targets: int, folder: Path, durations: Durations | None = None
            ) -> tuple[int, int, dict[str, int]]:
    """(journal bytes, commits, bytes by table.column) of an offline repair of ``targets``
    (``durations``: the sandbox's, realistic by default)."""
    scenario = Scenario("offline-repair", targets)
    clock = VirtualClock()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "journal.sqlite"
    with Sandbox(clock=clock, durations=durations or Durations.realistic()) as sandbox:
        fleet = sandbox.build_fleet(scenario.fleet_spec())
        sandbox.set_throttle(throttle_policy())
        playbook = prepare(load("offline-repair"), Setup(rescue_per_az=4))
        journal = Journal(path)
        result = Executor(
            playbook, [Target("ec2-instance", t.instance_id, t.region) for t in fleet.targets],
            clients=lambda _a, region, service: sandbox.client(service, region),
            clock=clock, bus=EventBus(), journal=journal, run_id="size",
            params=params_for(playbook)).run()
        commits = journal.commits
        journal.close()
    if result.summary != {"succeeded": targets}:
        raise SystemExit(f"the run did not fix every target: {result.summary}")
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file as the run left it, WAL folded in
    columns: dict[str, int] = {}
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                               "AND name NOT LIKE 'sqlite_%'").fetchall():
        for column in [row[1] for row in db.execute(f"PRAGMA table_info({table})")]:
            (size,) = db.execute(
                f"SELECT COALESCE(SUM(LENGTH(CAST({column} AS BLOB))), 0) FROM {table}"
            ).fetchone()
            columns[f"{table}.{column}"] = size
    columns["(free pages)"] = (db.execute("PRAGMA freelist_count").fetchone()[0]
                               * db.execute("PRAGMA page_size").fetchone()[0])
    db.close()
    return path.stat().st_size, commits, columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--targets", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        size, commits, columns = measure(args.targets, Path(folder))
    per_1000 = size * 1000 / args.targets
    print(f"offline repair, {args.targets} targets: journal {size:,} B "
          f"({per_1000 / 1e6:.2f} MB per 1,000 targets), {commits} commits "
          f"({commits / args.targets:.2f} per target)")
    for name, value in sorted(columns.items(), key=lambda item: -item[1])[:12]:
        print(f"  {name}: {value:,} B ({value / args.targets:,.0f} per target)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
