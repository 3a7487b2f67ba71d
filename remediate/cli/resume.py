"""`remediate resume JOURNAL`: continue an interrupted (or crashed) run."""

from __future__ import annotations

import os

import click

from remediate.cli import exitcodes
from remediate.cli.alarms import watch_alarms
from remediate.cli.exitcodes import UserError
from remediate.cli.launch import Environment, ctrl_c, exit_code, lookup, subscribers
from remediate.cli.lock_table import lock_table_option, open_leases
from remediate.cli.options import clock_factor_option, notify_option
from remediate.cli.resume_playbook import resume_playbook


@click.command(epilog=exitcodes.EPILOG)
@click.argument("journal", type=click.Path(dir_okay=False))
@click.option("--run-id", help="The run to continue (default: the journal's latest "
                                 "unfinished run).")
@click.option("--playbook", "playbook_path", type=click.Path(dir_okay=False),
              help="Where the playbook is now, if it moved: its scripts are read from its "
                   "folder (the playbook run is the copy journaled when the run started).")
@click.option("--edited-playbook", is_flag=True,
              help="Run the playbook file as it is now instead of the journaled copy, after "
                   "showing the diff; it becomes the run's playbook.")
@click.option("--report", "reports", multiple=True, metavar="FORMAT:PATH",
              help="Write a report: json:PATH, junit:PATH, md:PATH or html:PATH "
                   "(repeatable).")
@click.option("--progress/--no-progress", default=None)
@notify_option
@clock_factor_option
@lock_table_option
def resume(journal: str, run_id: str | None, playbook_path: str | None, edited_playbook: bool,
           reports: tuple[str, ...], progress: bool | None, clock_factor: float | None,
           lock_table: str | None, notify: str | None) -> int:
    """Continue the run journaled in JOURNAL from where it stopped.

    It runs the playbook as journaled when the run started, with the same
    parameters. Finished steps are not run again; the step that was in flight is
    re-run (every action checks AWS's real state first, so it finishes what it
    started); a rollback in flight goes on; rescue instances are cleaned up.
    Reports describe the whole run, not only this resume.

    JOURNAL may also be the ARN of a failed Step Functions execution (`run --engine
    stepfunctions`): it is redriven (RedriveExecution) and its status followed until it
    ends; the other options are for journals and are refused with an ARN.
    """
    from remediate.cli.redrive import is_execution_arn, redrive, refuse_journal_options

    if is_execution_arn(journal):
        refuse_journal_options({"--run-id": run_id, "--playbook": playbook_path,
                                "--edited-playbook": edited_playbook or None,
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
    playbook = resume_playbook(record, playbook_path, edited_playbook)
    env = Environment().scaled(clock_factor)
    factory = ClientFactory(playbook.targets.accounts, run_id=record.run_id,
                            session=env.session, endpoint_url=env.endpoint_url)
    # The run's --stop-on-alarm alarms, checked again before anything is written.
    alarms = watch_alarms(record.options.get("stop_on_alarm", ()), record.targets, factory,
                          env.clock)
    bus = subscribers(reports, progress, notify, factory, journal=journal)
    try:
        executor = resuming(store, playbook, clients=lookup(factory), clock=env.clock, bus=bus,
                            run_id=record.run_id, edited=edited_playbook,
                            leases=open_leases(lock_table, factory, record.run_id, env.clock),
                            alarms=alarms)
    except ResumeRefused as exc:
        raise UserError(str(exc)) from None
    click.echo(f"resuming run {record.run_id} ({record.status}) of {playbook.source}", err=True)
    with ctrl_c(executor):
        result = executor.run()
    return exit_code(result)
