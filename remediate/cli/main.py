"""Entry point: a click group whose commands are imported only when used.

`remediate --help`, `--version` and `validate` never import boto3: the command
modules import it inside functions, and only the commands that call AWS do.
This module is also the one exception boundary: user errors are one line and
exit 1, Ctrl-C exits 130, anything else writes a crash log and exits 3.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from typing import Any

import click

from remediate import __version__
from remediate.cli import exitcodes

# command name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("remediate.cli.run", "run", "Run a playbook across its targets."),
    "plan": ("remediate.cli.run", "plan", "Dry-run audit: what each target would get, "
             "and what it risks. Changes nothing."),
    "resume": ("remediate.cli.resume", "resume", "Continue an interrupted run from its "
               "journal."),
    "triage": ("remediate.cli.triage", "triage", "Classify every instance and WorkSpace "
               "(boot loop, stop code, healthy...) and the routes each could take."),
    "export": ("remediate.cli.export", "export", "Compile a playbook into an AWS Step "
               "Functions state machine definition."),
    "deploy": ("remediate.cli.export", "deploy", "Create or update a playbook's Step Functions "
               "state machine; print the IAM policy its role needs."),
    "demo": ("remediate.cli.demo", "demo", "Break a sandbox fleet and fix it: no AWS account "
             "needed."),
    "sandbox": ("remediate.cli.sandbox", "sandbox", "The moto-backed sandbox fleet, as a "
                "server."),
    "validate": ("remediate.cli.validate", "validate", "Check playbooks without running "
                 "them."),
    "schema": ("remediate.cli.schema", "schema", "Print the playbook language's JSON Schema."),
    "list-actions": ("remediate.cli.actions", "list_actions", "The actions playbooks can use."),
    "iam-policy": ("remediate.cli.actions", "iam_policy", "The least-privilege IAM policy a "
                   "playbook needs."),
    "readiness": ("remediate.cli.readiness", "readiness", "Before an incident: could a "
                  "playbook recover its targets? A scorecard per account and Region."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _, _) in COMMANDS.items() if _exists(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _exists(entry[0]):
            return None
        module, attr, _ = entry
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, epilog=exitcodes.EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="remediate")
def cli() -> None:
    """remediate: fix a broken fleet of EC2 instances and WorkSpaces from a YAML playbook.

    Paced to AWS's API limits, journaled so a crash can be resumed, with a dry-run
    audit before anything changes.
    """


def crash_log(exc: BaseException) -> str:
    folder = os.environ.get("REMEDIATE_CRASH_DIR") or os.path.join(
        tempfile.gettempdir(), "remediate-crashes")
    os.makedirs(folder, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = os.path.join(folder, f"crash-{stamp}-{os.getpid()}.log")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"remediate {__version__}, python {sys.version.split()[0]}\n")
        fh.write(f"argv: {sys.argv}\n\n")
        fh.write("".join(traceback.format_exception(exc)))
    return path


def main(argv: list[str] | None = None) -> int:
    try:
        result: Any = cli.main(args=argv, prog_name="remediate", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("interrupted", err=True)
        return exitcodes.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exitcodes.USAGE
    except exitcodes.UserError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return exitcodes.INTERRUPTED
    except Exception as exc:
        path = crash_log(exc)
        click.echo(f"unexpected error: {type(exc).__name__}: {exc}\ncrash log: {path}", err=True)
        return exitcodes.UNEXPECTED
    return result if isinstance(result, int) else exitcodes.OK
