"""The results table (Markdown, readable on a terminal too) and RESULTS.md.

RESULTS.md keeps hand-written analysis around generated blocks: only the text
between a block's markers is replaced, so the analysis of what holds the design
back survives a new run. Each selection of scenarios (a run's options) has a
block of its own (:func:`markers`), so the 10,000-target figures, say, stay when
the default sizes are run again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from fleetbench.bound import Bound
from fleetbench.runner import Measurement
from fleetbench.scenarios import Scenario
from remediate.sandbox.throttling import EC2_REQUEST_BUCKETS, ec2_bucket_class

START: Final = "<!-- fleet_bench:start -->"
END: Final = "<!-- fleet_bench:end -->"

COLUMNS: Final = (
    "scenario", "tool", "fixed", "makespan", "x bound", "vs 1-at-a-time", "calls/target",
    "throttled", "bucket busy", "tool CPU s/1k", "(remediate+botocore)", "moto CPU s/1k",
    "peak RSS MiB (+run)", "wall s",
)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def busy_share(measurement: Measurement, bound: Bound) -> float | None:
    """How full the bound's binding EC2 request bucket was kept: tokens spent over
    what it could give during the makespan (its capacity plus refill)."""
    name = bound.binding
    if not name.startswith("ec2 ") or name[4:] not in EC2_REQUEST_BUCKETS:
        return None
    bucket_class = name[4:]
    spent: float = sum(count for api, count in measurement.calls_by_api.items()
                if api.startswith("ec2:")
                and ec2_bucket_class(api[4:], {"InstanceId.1": "i-0"}) == bucket_class)
    bucket = EC2_REQUEST_BUCKETS[bucket_class]
    if measurement.scenario.regions > 1:
        spent /= measurement.scenario.regions  # buckets are per Region; the fleet is even
    return spent / (bucket.capacity + bucket.refill_per_second * measurement.makespan)


def row(m: Measurement, bound: Bound, sequential: Measurement | None) -> list[str]:
    fixed = f"{m.fixed:,}/{m.targets:,}"
    if m.rescue_left:
        fixed += f" ({m.rescue_left} rescue left)"
    makespan = _duration(m.makespan)
    if m.extrapolated_from is not None:
        makespan += f" (extrapolated from {m.extrapolated_from})"
    speedup = (f"{sequential.makespan / m.makespan:.1f}x faster"
               if sequential is not None and m.tool != "one-at-a-time" else "")
    busy = busy_share(m, bound)
    cpu = m.cpu
    memory = m.memory
    rss = "n/a" if memory.peak is None else f"{memory.peak:,.0f} (+{memory.growth or 0:,.0f})"
    return [
        m.scenario.label, m.tool, fixed, makespan, f"{m.makespan / bound.seconds:.2f}",
        speedup, f"{m.calls_per_target:.1f}",
        f"{m.throttled:,} ({m.throttled_share:.1%})",
        "" if busy is None else f"{busy:.0%}",
        f"{m.cpu_per_1000(cpu.tool):.1f}",
        f"({m.cpu_per_1000(cpu.remediate):.1f}+{m.cpu_per_1000(cpu.botocore):.1f})",
        f"{m.cpu_per_1000(cpu.simulator):.1f}", rss, f"{m.wall:.0f}",
    ]


def table(rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def bound_line(scenario: Scenario, bound: Bound) -> str:
    """How the scenario's bound comes about, in one line."""
    text = (f"{scenario.label}: bound {bound.seconds:,.0f} s, set by {bound.binding}; "
            f"critical path {bound.critical_path:,.0f} s")
    top = bound.buckets[0] if bound.buckets else None
    if top is not None and top.seconds > bound.critical_path:
        text += (f"; {top.bucket}: {top.tokens:,.0f} tokens per Region, "
                 f"{top.earliest:,.0f} s before its hops can start + {top.drain:,.0f} s "
                 f"of refill + {top.tail:,.0f} s after its last hop")
    return text


def render(measurements: Sequence[Measurement], bounds: Mapping[Scenario, Bound]) -> str:
    """The table, then the bounds, API calls per target by operation, the statuses of
    runs that did not fix every target, throttled calls by operation, and step times."""
    sequential = {m.scenario: m for m in measurements if m.tool == "one-at-a-time"}
    rows = [row(m, bounds[m.scenario], sequential.get(m.scenario)) for m in measurements]
    parts = [table(rows), "", "Lower bounds (see README.md):", ""]
    parts += [f"- {bound_line(s, b)}" for s, b in bounds.items()]
    parts += ["", "Requests AWS answered, per target, by operation (throttled ones left out):",
              ""]
    for m in measurements:
        top = sorted(m.calls_by_api.items(), key=lambda kv: -kv[1])
        calls = ", ".join(f"{api.split(':')[1]} {count / m.targets:.2f}" for api, count in top)
        parts.append(f"- {m.scenario.label}, {m.tool}: {calls}")
    unfinished = [m for m in measurements if m.statuses.get("succeeded", 0) != m.targets]
    if unfinished:
        parts += ["", "Runs where some targets did not succeed (the executor's statuses):", ""]
        parts += [f"- {m.scenario.label}, {m.tool}: "
                  + ", ".join(f"{status} {count:,}" for status, count in sorted(m.statuses.items()))
                  for m in unfinished]
    throttled = [m for m in measurements if m.throttled_by_api]
    if throttled:
        parts += ["", "Requests AWS throttled, by operation:", ""]
        for m in throttled:
            top = sorted(m.throttled_by_api.items(), key=lambda kv: -kv[1])
            parts.append(f"- {m.scenario.label}, {m.tool}: "
                         + ", ".join(f"{api.split(':')[1]} {count:,}" for api, count in top))
    parts += ["", "Mean time per step, simulated seconds (token waits and polling included):", ""]
    for m in measurements:
        steps = ", ".join(f"{step} {seconds:,.0f}" for step, seconds in m.step_seconds.items())
        parts.append(f"- {m.scenario.label}, {m.tool}: {steps}")
    return "\n".join(parts)


def markers(key: str = "") -> tuple[str, str]:
    """The start and end markers of the block for ``key`` ("": the default run's)."""
    if not key:
        return START, END
    if "-->" in key:
        raise ValueError(f"a block key cannot hold '-->': {key!r}")
    return f"<!-- fleet_bench:start {key} -->", f"<!-- fleet_bench:end {key} -->"


def write_results(path: Path, command: str, environment: str, body: str,
                  key: str = "") -> None:
    """Replace the generated block for ``key`` in ``path`` (appended if it has none;
    the file is created with a stub if missing)."""
    start, end = markers(key)
    block = "\n".join([start, "", "Command:", "", "```", command, "```", "", environment, "",
                       body, "", end])
    text = path.read_text() if path.exists() else "# Fleet benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
