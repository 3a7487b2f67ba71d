"""`plan --out`, `run --plan` and `run --retry-failed`: which targets a run may touch.

`run --plan FILE` applies an approved plan exactly: its playbook text, parameter
values and accepted findings, its approved targets and no other (no discovery),
each checked against the facts the plan pinned. Whatever would change what was
approved is refused on the command line (a selector, ``--param``, ``--accept``):
accepting a data loss the commander did not sign is a new plan, not an option
at 3 a.m. `run PLAYBOOK --retry-failed SOURCE` narrows discovery to the targets
an earlier run failed, rolled back or interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from remediate import __version__
from remediate.actions.contract import Target
from remediate.cli.exitcodes import UserError
from remediate.cli.options import TargetArgs
from remediate.cli.playbook_arg import loaded_or_fail
from remediate.language.loader import load_text
from remediate.language.model import Playbook
from remediate.plans.document import Plan, read_plan, text_sha256
from remediate.plans.scripts import changed_scripts, script_hashes

if TYPE_CHECKING:
    from remediate.discovery import Overrides
    from remediate.plans.retry import RetrySet
    from remediate.reporters.record import RunRecord


def refuse_changes_to_plan(plan_path: str, targets: TargetArgs, params: Mapping[str, str],
                           accepted: frozenset[str]) -> None:
    """What `run --plan` may not be given: anything that changes what was approved."""
    given = [name for name, value in (
        ("--target-ids", targets.target_ids), ("--tag", targets.tags),
        ("--filter", targets.filters), ("--region", targets.regions),
        ("--limit", targets.limit), ("--param", params), ("--accept", accepted)) if value]
    if given:
        raise UserError(f"--plan {plan_path} runs the approved plan as it is: {', '.join(given)} "
                        "would change what was approved; plan again with them (`remediate "
                        "plan PLAYBOOK ... --out FILE`)")


def approved_plan(plan_path: str, playbook_path: str | None) -> tuple[Plan, Playbook]:
    """The plan, and its playbook loaded from the text it saved (its script files from its
    folder). A PLAYBOOK given as well must be that very text."""
    plan = read_plan(plan_path)
    if playbook_path is not None:
        try:
            with open(playbook_path, encoding="utf-8-sig", newline="") as fh:
                now = fh.read()
        except (OSError, UnicodeDecodeError):
            now = None
        if now is None or text_sha256(now) != text_sha256(plan.playbook_text):
            raise UserError(f"{playbook_path} is not the playbook {plan_path} approved (sha256 "
                            f"{text_sha256(plan.playbook_text)[:12]}...): leave PLAYBOOK out "
                            "to run the plan's copy, or plan again")
    if not plan.approved:
        raise UserError(f"--plan {plan_path}: the plan approves no target (each was refused "
                        "or skipped when it was planned): nothing to run")
    playbook = loaded_or_fail(load_text(plan.playbook_text, plan.playbook_path,
                                        plan.playbook_folder))
    changed = changed_scripts(plan.scripts, script_hashes(playbook, plan.params,
                                                          plan.playbook_folder))
    if changed:
        raise UserError(f"--plan {plan_path}: {'; '.join(changed)}: plan again to approve it")
    return plan, playbook


def plan_targets(plan: Plan, plan_path: str) -> tuple[list[Target], dict[str, Any]]:
    """The approved targets, and their pinned facts by target key. Targets the plan did not
    approve are said in one note: they are not run."""
    if plan.remediate_version != __version__:
        click.echo(f"note: {plan_path} was planned with remediate {plan.remediate_version}; "
                   f"this is remediate {__version__}", err=True)
    left = len(plan.targets) - len(plan.approved)
    if left:
        click.echo(f"note: {plan_path}: {left} target(s) the plan refused or skipped are not "
                   "run (plan again once they are fixed)", err=True)
    click.echo(f"applying plan {plan_path} ({plan.planned_by}, {plan.planned_at}): "
               f"{len(plan.approved)} approved target(s)", err=True)
    return ([t.target for t in plan.approved],
            {t.target.key: dict(t.pinned) for t in plan.approved})


def check_plan_out(path: str, reports: Sequence[str]) -> None:
    """``plan --out PATH`` before any AWS call: a file of its own (stdout carries the
    audit, and a report on the same file would replace the plan), and writable."""
    from remediate.destinations import check_destination
    from remediate.reporters import parse_spec

    if path == "-":
        raise UserError("--out -: the audit itself is printed on stdout; give the plan a file")
    for text in reports:
        spec = parse_spec(text)
        if spec.path != "-" and os.path.realpath(spec.path) == os.path.realpath(path):
            raise UserError(f"--out {path} is the file of --report {text}: give the plan a "
                            "file of its own")
    check_destination(path, f"--out {path}")


def save_plan(path: str, record: RunRecord, playbook: Playbook, params: Mapping[str, Any],
              accepted: frozenset[str], targets: TargetArgs, overrides: Overrides) -> None:
    """Write the dry run ``record`` as the approved plan at ``path`` (atomically)."""
    from remediate.discovery import select
    from remediate.plans.from_audit import plan_from_audit
    from remediate.reporters.files import write_atomically

    selection = {"target_ids": list(overrides.target_ids), "tags": list(targets.tags),
                 "filters": list(targets.filters), "regions": list(overrides.regions),
                 "limit": overrides.limit}
    selecting = select(playbook.targets, overrides).tags
    plan = plan_from_audit(record, playbook, params, accepted, profile=targets.profile,
                           selection=selection, selecting_tags=list(selecting))
    write_atomically(path, plan.to_json())
    click.echo(f"plan saved to {path}: {len(plan.approved)} target(s) approved, "
               f"{len(plan.targets) - len(plan.approved)} not (refused or skipped); apply it "
               f"with `remediate run --plan {path}`", err=True)


def retry_set(source: str, journal_path: str, playbook: Playbook,
              targets: TargetArgs) -> RetrySet:
    """``--retry-failed SOURCE``'s targets, for ``playbook`` (same kind of target)."""
    from remediate.plans.retry import failed_targets

    if targets.target_ids:
        raise UserError("--retry-failed selects the targets by itself: leave out --target-ids")
    chosen = failed_targets(source, journal_path)
    other = sorted(chosen.kinds - {playbook.targets.kind})
    if other:
        raise UserError(f"--retry-failed {source}: run {chosen.run_id} worked on {other[0]} "
                        f"targets; {playbook.source} works on {playbook.targets.kind}")
    click.echo(f"retrying {len(chosen.targets)} target(s) that failed, were rolled back or "
               f"were interrupted in run {chosen.run_id} ({source})", err=True)
    return chosen


def retried_only(chosen: RetrySet, found: list[Target]) -> list[Target]:
    """Of the targets discovery ``found`` (narrowed to the retried ids), those the earlier
    run failed: an id in another account or Region is another target."""
    kept = [t for t in found if t.key in chosen.keys]
    if not kept:
        raise UserError(f"--retry-failed {chosen.source}: none of its {len(chosen.targets)} "
                        "target(s) to retry matches the playbook's selector now")
    return kept

