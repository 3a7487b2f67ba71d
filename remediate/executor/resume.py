"""``remediate resume JOURNAL``: continue an interrupted (or crashed) run.

The run keeps its id, playbook (the text journaled when it started), bound
parameters, options and targets. Finished targets are left alone; a target that
was mid-way continues from its first unfinished step of its current pass:
finished steps are not re-run (their outputs are reloaded from the journal), the
step that was in flight is run again (actions reconcile against AWS's real
state, so re-running one finishes what it started), and a rollback in flight
resumes the rollback (one the operator caused by Ctrl-C then starts the target
again, in a new pass). Facts found by the first inspection are reused. The run
services the interrupted process used are re-created so their cleanup (the
rescue pool's instances) happens at the end, even if no target needs them again.

Running a playbook other than the journaled one is the operator's explicit
choice (``edited``): it becomes the run's journaled playbook from then on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from remediate.aws.apis import Bucket
from remediate.clock import Clock
from remediate.executor.calls import ClientLookup
from remediate.executor.engine import Confirm, Executor, file_sha256, playbook_sha256
from remediate.executor.events import EventBus
from remediate.executor.result import RunResult
from remediate.journal import Journal, LockHolder, RunRecord
from remediate.language.model import Playbook


class ResumeRefused(ValueError):
    pass


def held_text(journal: Journal, run_id: str, holder: LockHolder) -> str:
    """Why ``run_id`` cannot be resumed now: ``holder`` is still running it."""
    if holder.host == journal.host:
        return (f"{journal.path}: run {run_id} is still going (pid {holder.pid} on this host "
                "is alive): let it finish, or stop it, then resume")
    return (f"{journal.path}: run {run_id} is held by pid {holder.pid} on {holder.host} "
            f"(since {holder.started_at}), which cannot be checked from {journal.host}: "
            f"resume it on {holder.host}")


def check_playbook(record: RunRecord, playbook: Playbook, edited: bool = False) -> None:
    """The playbook must be the one the run started with, unless ``edited`` (the
    operator's choice, after seeing the diff)."""
    if edited:
        return
    if record.playbook_text is not None:
        if playbook.text != record.playbook_text:
            raise ResumeRefused(
                f"{playbook.source} is not the playbook run {record.run_id} started with: "
                "resume runs the copy journaled then (`remediate resume` loads it), or the "
                "edited file with --edited-playbook")
        return
    # Journaled by an older remediate: only its hash was kept.
    found = file_sha256(playbook.source)
    if record.playbook_sha256 and found != record.playbook_sha256:
        raise ResumeRefused(
            f"{playbook.source} changed since run {record.run_id} started (sha256 "
            f"{record.playbook_sha256[:12]}... then, {found[:12] or 'unreadable'}... now) and "
            "its journal holds no copy of it (an older remediate wrote it): restore the "
            "playbook the run started with, or run the edited file with --edited-playbook")


def bound_params(record: RunRecord, playbook: Playbook, edited: bool = False
                 ) -> dict[str, Any]:
    """The run's journaled parameter values; for an edited playbook, those of its
    parameters that the run had, and the defaults of the others."""
    if not edited:
        return dict(record.params)
    values: dict[str, Any] = {}
    for name, param in playbook.parameters.items():
        if name in record.params:
            values[name] = record.params[name]
        elif param.default is not None or not param.required:
            values[name] = param.default
        else:
            raise ResumeRefused(f"{playbook.source}: parameter {name} is required and run "
                                f"{record.run_id} has no value for it")
    return values


def resume(journal: Journal | str | os.PathLike[str], playbook: Playbook,
           **kwargs: Any) -> RunResult:
    """Continue a run to its end; see :func:`resuming` for the arguments."""
    return resuming(journal, playbook, **kwargs).run()


def resuming(
    journal: Journal | str | os.PathLike[str],
    playbook: Playbook,
    *,
    clients: ClientLookup,
    clock: Clock,
    bus: EventBus,
    run_id: str | None = None,
    confirm: Confirm | None = None,
    concurrency: int | None = None,
    rate_limits: Mapping[str, Bucket] | None = None,
    edited: bool = False,
    **options: Any,
) -> Executor:
    """An executor that continues run ``run_id`` (default: the journal's latest run) with
    ``playbook``, which the caller loaded from ``journal.run(run_id).playbook_text`` (or,
    for a journal that has none, ``playbook_path``); ``edited``: a playbook the operator
    chose to run instead (it is journaled as the run's). The CLI keeps the executor to
    call ``request_stop()`` from its Ctrl-C handler, then ``run()``s it."""
    if not isinstance(journal, Journal):
        journal = Journal(journal)
    record = journal.run(run_id)
    if record.dry_run:
        raise ResumeRefused(f"run {record.run_id} was a dry run: there is nothing to resume")
    check_playbook(record, playbook, edited)
    params = bound_params(record, playbook, edited)
    # Last: the claim marks the run running in this process (nothing is written if
    # another live process, or another host, still runs it).
    holder = journal.claim_run(record.run_id)
    if holder is not None:
        raise ResumeRefused(held_text(journal, record.run_id, holder))
    # The operator's edit, or (a journal an older remediate wrote) the very playbook
    # the run started with, as checked: journaled, for the resumes to come.
    if playbook.text and playbook.text != record.playbook_text and (
            edited or record.playbook_text is None):
        journal.set_playbook(record.run_id, playbook.text, playbook_sha256(playbook), params)
    saved = record.options
    limits = rate_limits or {name: Bucket(*spec) for name, spec in
                             saved.get("rate_limits", {}).items()}
    return Executor(
        playbook, record.targets, clients=clients, clock=clock, bus=bus, journal=journal,
        run_id=record.run_id, params=params,
        accepted=frozenset(saved.get("accepted", ())),
        concurrency=concurrency or saved.get("concurrency"), rate_limits=limits,
        confirm=confirm, batch_window=options.pop("batch_window", saved.get("batch_window", 0.0)),
        inspect_actions=options.pop("inspect_actions", saved.get("inspect_actions")),
        prior=journal.targets(record.run_id), approved=saved.get("approved"), **options)
