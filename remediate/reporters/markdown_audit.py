"""The dry-run audit, in Markdown: what a run would do, before it does anything.

Per target: its facts, findings, the steps it would get or skip and why, and the
API calls they would make. Then the whole run: the estimated duration, the calls
by API, the targets by finding and the steps by outcome, so a reviewer can
approve (or stop) the change.
"""

from __future__ import annotations

import re
from collections import Counter

from remediate.aws.apis import is_mutating
from remediate.findings import FINDINGS
from remediate.language.durations import format_duration
from remediate.reporters.markdown_blocks import header, run_notes, table
from remediate.reporters.record import PlannedStep, RunRecord, TargetRecord
from remediate.reporters.wording import (
    by_urgency,
    finding_line,
    outcome,
    plural,
    rescue_images,
    rescue_ssm,
    selection,
)

_API = re.compile(r"^([a-z0-9-]+)[:.]([A-Za-z0-9]+)$")


def _mutating(call: str, plan: PlannedStep) -> bool:
    """Per call when it names an operation (``ec2:StopInstances``), else the step's flag."""
    match = _API.match(call)
    return is_mutating(*match.groups()) if match else plan.mutating


def _worked_on(record: RunRecord) -> list[TargetRecord]:
    return [r for r in record.targets.values() if r.status not in ("refused", "skipped")]


def api_calls(record: RunRecord) -> list[str]:
    calls: Counter[tuple[str, bool]] = Counter()
    for target in _worked_on(record):
        for plan in target.planned:
            if not plan.skip:
                calls.update((call, _mutating(call, plan)) for call in plan.calls)
    if not calls:
        return []
    rows = [[f"`{call}`", "yes" if mutating else "no", count]
            for (call, mutating), count in sorted(calls.items())]
    return ["## API calls it would make", "",
            "Counted per target; the executor merges calls that take many ids into one request.",
            "", *table(["API call", "Mutating", "Calls"], rows)]


def forecast(record: RunRecord) -> list[str]:
    """The rehearsal's figures (remediate.forecast): the requests the run would send."""
    found = record.forecast
    if found is None:
        return []
    rows = [[f"`{api}`", count] for api, count in found.calls]
    return ["## Forecast", "",
            f"{format_duration(found.seconds)}, from rehearsing the run on a model of these "
            f"{plural(found.targets, 'target')} (simulated time; canary batches, rescue pools "
            f"and API limits included), assuming {found.assumptions}.", "",
            *table(["Mutating API call", "Requests"], rows)]


def permissions(record: RunRecord) -> list[str]:
    if not record.permissions:
        return []
    rows = [[f"`{p.iam_action}`", f"{p.account}/{p.region}", p.outcome, p.detail]
            for p in by_urgency(record.permissions)]
    return ["## IAM permissions", "",
            "Asked with EC2's `DryRun=True` before anything runs: **denied** means the real "
            "run would fail there; fix the role first (`remediate iam-policy` prints the "
            "policy it needs).", "",
            *table(["Permission", "Where", "Answer", "Detail"], rows)]


def by_finding(record: RunRecord) -> list[str]:
    counts = Counter(f.kind for r in record.targets.values() for f in r.findings)
    if not counts:
        return ["## Findings", "", "None: no target has a known risk.", ""]
    rows = []
    for kind, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        known = FINDINGS.get(kind)
        rows.append([kind, known.severity if known else "info", count,
                     known.summary if known else "", known.hint if known else ""])
    return ["## Findings", "",
            *table(["Finding", "Severity", "Targets", "What it means", "What to do"], rows)]


def by_step(record: RunRecord) -> list[str]:
    runs: Counter[str] = Counter()
    skips: dict[str, Counter[str]] = {}
    actions: dict[str, str] = {}
    for target in _worked_on(record):
        for plan in target.planned:
            actions.setdefault(plan.step, plan.action)
            if plan.skip:
                skips.setdefault(plan.step, Counter())[plan.skip] += 1
            else:
                runs[plan.step] += 1
    order = [s for s in record.step_ids if s in actions] + [s for s in actions
                                                            if s not in record.step_ids]
    if not order:
        return []
    rows = []
    for step in order:
        why = skips.get(step, Counter())
        reasons = "; ".join(f"{reason} ({count})" for reason, count in why.most_common())
        rows.append([step, actions[step], runs[step], sum(why.values()), reasons])
    return ["## Steps", "",
            *table(["Step", "Action", "Would run", "Would skip", "Why skipped"], rows)]


def _target(record: TargetRecord) -> list[str]:
    t = record.target
    verdict = outcome(record) if record.status != "planned" else "would be worked on"
    lines = [f"### `{t.id}` ({t.region}, account {t.account}): {verdict}", ""]
    facts = [f"{key} {value}" for key, value in record.fact_excerpt().items()]
    if facts:
        lines += ["Facts: " + ", ".join(facts) + ".", ""]
    if record.findings:
        lines += [*(f"- {finding_line(f)}" for f in record.findings), ""]
    if record.planned:
        rows = [[p.step, p.action, (f"skip: {p.skip}" if p.skip else "run")
                 + (f" (only if {p.condition})" if p.condition else ""),
                 ", ".join(f"`{c}`" for c in p.calls) if not p.skip else ""]
                for p in record.planned]
        lines += table(["Step", "Action", "Would", "API calls"], rows)
    return lines


def audit(record: RunRecord) -> str:
    s = record.summary()
    lines = [f"# remediate dry run: {record.playbook}", "", *header(record)]
    lines += ["**Nothing was changed.** This is what a run would do.", ""]
    lines += [f"**{plural(s['total'], 'target')}: {selection(s, 'would be worked on')}**.",
              ""]
    if record.estimate_seconds is not None and record.forecast is None:
        lines += [f"Estimated duration: {format_duration(record.estimate_seconds)}.", ""]
    images, reach = rescue_images(record), rescue_ssm(record)
    if images:
        lines += [f"Rescue image (`rescue_image_id`): {images}.", ""]
    if reach:
        lines += [f"Rescue instances reach SSM by: {reach}.", ""]
    lines += run_notes(record)
    lines += forecast(record)
    lines += api_calls(record)
    lines += permissions(record)
    lines += by_finding(record)
    lines += by_step(record)
    lines += ["## Targets", ""]
    for target in record.targets.values():
        lines += _target(target)
    return "\n".join(lines).rstrip() + "\n"
