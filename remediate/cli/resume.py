"""`remediate resume JOURNAL`: continue an interrupted (or crashed) run."""

from __future__ import annotations

import os

import click

from remediate.cli import exitcodes
from remediate.cli.exitcodes import UserError
from remediate.cli.launch import Environment, ctrl_c, exit_code, lookup, subscribers
from remediate.cli.lock_table import lock_table_option, open_leases
from remediate.cli.options import clock_factor_option, notify_option
from remediate.cli.playbook_arg import load_or_fail


@click.command(epilog=exitcodes.EPILOG)
@click.argument("journal", type=click.Path(dir_okay=False))
@click.option("--run-id", help="The run to continue (default: the journal's latest "
                                 "unfinished run).")
@click.option("--playbook", "playbook_path", type=click.Path(dir_okay=False),
              help="Where the playbook is now, if it moved (it must be the same file).")
@click.option("--report", "reports", multiple=True, metavar="FORMAT:PATH",
              help="Write a report: json:PATH, junit:PATH or md:PATH (repeatable).")
@click.option("--progress/--no-progress", default=None)
@notify_option
@clock_factor_option
@lock_table_option
def resume(journal: str, run_id: str | None, playbook_path: str | None,
           reports: tuple[str, ...], progress: bool | None, clock_factor: float | None,
           lock_table: str | None, notify: str | None) -> int:
    """Continue the run journaled in JOURNAL from where it stopped.

    Finished steps are not run again; the step that was in flight is re-run
    (every action checks AWS's real state first, so it finishes what it
    started); a rollback in flight goes on; rescue instances are cleaned up.

    JOURNAL may also be the ARN of a failed Step Functions execution (`run --engine
    stepfunctions`): it is redriven (RedriveExecution) and its status followed until it
    ends; the other options are for journals and are refused with an ARN.
    """
    from remediate.cli.redrive import is_execution_arn, redrive, refuse_journal_options

    if is_execution_arn(journal):
        refuse_journal_options({"--run-id": run_id, "--playbook": playbook_path,
                                "--report": reports, "--progress/--no-progress": progress,
                                "--clock-factor": clock_factor, "--lock-table": lock_table})
        return redrive(journal)
    if not os.path.isfile(journal):
        raise UserError(f"no journal at {journal}")
    from remediate.aws.clients import ClientFactory
    from remediate.executor.resume import ResumeRefused, resuming
    from remediate.journal import Journal

    store = Journal(journal)
    try:
        record = store.run(run_id)
    except KeyError:
        raise UserError(f"{journal} has no run {run_id!r}" if run_id
                        else f"{journal} holds no run") from None
    if run_id is None:
        others = [r for r in store.unfinished_runs() if r != record.run_id]
        if others:
            click.echo(f"note: {journal} also holds {len(others)} other unfinished "
                       f"run(s): {', '.join(others)} (`--run-id` continues one)", err=True)
    playbook = load_or_fail(playbook_path or record.playbook_path)
    env = Environment().scaled(clock_factor)
    factory = ClientFactory(playbook.targets.accounts, run_id=record.run_id,
                            session=env.session, endpoint_url=env.endpoint_url)
    bus = subscribers(reports, progress, notify, factory, journal=journal)
    try:
        executor = resuming(store, playbook, clients=lookup(factory), clock=env.clock, bus=bus,
                            run_id=record.run_id,
                            leases=open_leases(lock_table, factory, record.run_id, env.clock))
    except ResumeRefused as exc:
        raise UserError(str(exc)) from None
    click.echo(f"resuming run {record.run_id} ({record.status}) of {playbook.source}", err=True)
    with ctrl_c(executor):
        result = executor.run()
    return exit_code(result)
