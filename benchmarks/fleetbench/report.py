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
from remediate.sandbox.throttling import ec2_request_bucket

START: Final = "<!-- fleet_bench:start -->"
END: Final = "<!-- fleet_bench:end -->"

COLUMNS: Final = (
    "scenario", "places", "throttle model", "tool", "fixed", "makespan", "bound",
    "x bound", "remediate faster by", "calls/target", "throttled", "bucket busy",
    "tool CPU s/1k", "(remediate+botocore)", "moto CPU s/1k", "peak RSS MiB (+run)",
    "wall s",
)
BASELINES: Final = ("tuned-script", "ssm-automation", "one-at-a-time", "unpaced")


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
    binding = next((b for b in bound.buckets if b.bucket == name), None)
    if binding is None or not name.startswith("ec2:") or name.startswith("ec2:resource:"):
        return None
    model = measurement.scenario.throttle_model
    spent: float = sum(count for api, count in measurement.calls_by_api.items()
                       if api.startswith("ec2:") and ec2_request_bucket(
                           api[4:], {"InstanceId.1": "i-0"}, model)[0] == name)
    bucket = binding.size
    if measurement.scenario.places > 1:
        spent /= measurement.scenario.places  # buckets are per place; the fleet is even
    return spent / (bucket.capacity + bucket.refill_per_second * measurement.makespan)


def tool_name(m: Measurement) -> str:
    """The tool, with the tuned script's N."""
    return f"{m.tool} (N={m.workers})" if m.tool == "tuned-script" else m.tool


def best_of(measurements: Sequence[Measurement]) -> list[Measurement]:
    """The measurements with, of each scenario's tuned-script runs (one per N tried),
    only its best: most targets fixed, then the shortest makespan."""
    best: dict[Scenario, Measurement] = {}
    for m in measurements:
        if m.tool == "tuned-script":
            seen = best.get(m.scenario)
            if seen is None or (-m.fixed, m.makespan) < (-seen.fixed, seen.makespan):
                best[m.scenario] = m
    return [m for m in measurements
            if m.tool != "tuned-script" or best[m.scenario] is m]


def row(m: Measurement, bound: Bound, ours: Measurement | None) -> list[str]:
    fixed = f"{m.fixed:,}/{m.targets:,}"
    if m.rescue_left:
        fixed += f" ({m.rescue_left} rescue left)"
    makespan = _duration(m.makespan)
    if m.extrapolated_from is not None:
        makespan += f" (extrapolated from {m.extrapolated_from})"
    speedup = (f"{m.makespan / ours.makespan:.1f}x"
               if ours is not None and m.tool != "remediate" else "")
    busy = busy_share(m, bound)
    cpu = m.cpu
    memory = m.memory
    rss = "n/a" if memory.peak is None else f"{memory.peak:,.0f} (+{memory.growth or 0:,.0f})"
    return [
        m.scenario.label, str(m.scenario.places), m.scenario.throttle_model, tool_name(m),
        fixed, makespan, f"{bound.seconds:,.0f} s", f"{m.makespan / bound.seconds:.2f}",
        speedup, f"{m.calls_per_target:.1f}",
        f"{m.throttled:,} ({m.throttled_share:.1%})",
        "" if busy is None else f"{busy:.0%}",
        f"{m.cpu_per_1000(cpu.tool):.1f}",
        "" if m.workers is not None else  # a script's CPU is not split
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
    ours = {m.scenario: m for m in measurements if m.tool == "remediate"}
    shown = best_of(measurements)
    rows = [row(m, m.bound or bounds[m.scenario], ours.get(m.scenario)) for m in shown]
    parts = [table(rows)]
    tried = [m for m in measurements if m.tool == "tuned-script"]
    if tried:
        parts += ["", "Tuned script, every N tried (the table shows the best):", ""]
        for scenario in dict.fromkeys(m.scenario for m in tried):
            parts.append(f"- {scenario.label}: " + "; ".join(
                f"N={m.workers}: {_duration(m.makespan)}, {m.fixed:,}/{m.targets:,} fixed, "
                f"{m.throttled_share:.1%} throttled"
                for m in tried if m.scenario == scenario))
    parts += ["", "Lower bounds (see README.md):", ""]
    parts += [f"- {bound_line(s, b)}" for s, b in bounds.items()]
    parts += ["", "Requests AWS answered, per target, by operation (throttled ones left out):",
              ""]
    for m in shown:
        top = sorted(m.calls_by_api.items(), key=lambda kv: -kv[1])
        calls = ", ".join(f"{api.split(':')[1]} {count / m.targets:.2f}" for api, count in top)
        parts.append(f"- {m.scenario.label}, {tool_name(m)}: {calls}")
    unfinished = [m for m in shown if m.fixed != m.targets
                  or m.statuses.get("succeeded", m.targets) != m.targets]
    if unfinished:
        parts += ["", "Runs where some targets did not succeed (the executor's statuses; a "
                  "script's: what it gave up on, and why):", ""]
        parts += [f"- {m.scenario.label}, {tool_name(m)}: "
                  + ", ".join(f"{status} {count:,}" for status, count in sorted(m.statuses.items()))
                  for m in unfinished]
    throttled = [m for m in shown if m.throttled_by_api]
    if throttled:
        parts += ["", "Requests AWS throttled, by operation:", ""]
        for m in throttled:
            top = sorted(m.throttled_by_api.items(), key=lambda kv: -kv[1])
            parts.append(f"- {m.scenario.label}, {tool_name(m)}: "
                         + ", ".join(f"{api.split(':')[1]} {count:,}" for api, count in top))
    parts += ["", "Mean time per step, simulated seconds (token waits and polling included):", ""]
    for m in shown:
        if m.step_seconds:
            steps = ", ".join(f"{step} {seconds:,.0f}"
                              for step, seconds in m.step_seconds.items())
            parts.append(f"- {m.scenario.label}, {tool_name(m)}: {steps}")
    return "\n".join(parts)


def record(m: Measurement, bound: Bound) -> dict[str, object]:
    """One measurement as JSON (``fleet_bench.py --json``)."""
    cpu, memory = m.cpu, m.memory
    return {
        "playbook": m.scenario.playbook, "targets": m.targets, "places": m.scenario.places,
        "accounts": m.scenario.accounts, "regions": m.scenario.regions,
        "throttle_model": m.scenario.throttle_model,
        "tool": m.tool, "workers": m.workers, "as_shipped": not m.setup.one_batch,
        "makespan_s": round(m.makespan, 1), "bound_s": round(bound.seconds, 1),
        "ratio": round(m.makespan / bound.seconds, 3), "binding": bound.binding,
        "critical_path_s": round(bound.critical_path, 1), "fixed": m.fixed,
        "rescue_left": m.rescue_left, "statuses": m.statuses,
        "throttled_calls": m.throttled, "calls": m.api_calls,
        "throttled_share": round(m.throttled_share, 4),
        "calls_per_target": round(m.calls_per_target, 2),
        "extrapolated_from": m.extrapolated_from,
        "tool_cpu_s_per_1000": round(m.cpu_per_1000(cpu.tool), 2),
        "simulator_cpu_s_per_1000": round(m.cpu_per_1000(cpu.simulator), 2),
        "peak_rss_mib": None if memory.peak is None else round(memory.peak, 1),
        "wall_s": round(m.wall, 1),
    }


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
