"""The README's own commands, run as an operator would paste them, against a sandbox server.

Each ends in a result or a one-line error (exit 0, 1 or 2), never a traceback or an
"internal error": the README's `--param rescue_image_id=ami-0abc...` once refused every
target with `internal error in action ec2.inspect: AttributeError`. The commands are
read from README.md itself, so an example added there is run here too.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import ROOT
from e2e_support import SandboxServer, remediate

# Run elsewhere: a Step Functions run needs `sandbox serve --stepfunctions` to execute its
# state machine (tests/e2e/test_stepfunctions_server.py runs one).
ELSEWHERE = ("--engine stepfunctions",)


def readme_commands() -> list[list[str]]:
    """Every `remediate ...` line of the README's bash blocks: continuations joined,
    comments and output redirections dropped, and a `...` that stands for more options."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if "&&" in words or not words or words[0] != "remediate":
                continue  # installs, test runs: not commands of the tool
            if ">" in words:
                words = words[:words.index(">")]
            if not any(marker in " ".join(words) for marker in ELSEWHERE):
                commands.append([word for word in words[1:] if word != "..."])
    return commands


COMMANDS = readme_commands()
# Each command's exit code against a sandbox of 2 broken instances in us-east-1, in the
# README's order (one after another: `deploy` makes the state machine the later ones see).
EXIT_CODES = {
    "validate playbooks/ my-playbook.yaml": 1,  # no my-playbook.yaml here
    "validate --format sarif playbooks/": 0,
    "schema": 0,
    # two instances in their boot loop: some target needs a repair
    "triage": 2,
    "triage --tag incident=crowdstrike-2024-07-19 --output json": 2,
    "triage --kind ec2-instance --tag-classes": 2,
    "plan playbooks/ec2-offline-repair.yaml": 0,
    "run playbooks/ec2-offline-repair.yaml --region us-east-1 --region eu-west-1 --tag "
    "team=payments --limit 500 --report json:reports/run.json --report junit:reports/run.xml "
    "--report md:reports/run.md --report html:reports/run.html --stop-on-alarm payments-5xx "
    "--notify sns:arn:aws:sns:us-east-1:123456789012:outage-bridge": 1,  # no such topic
    "resume .remediate/journal.sqlite": 1,  # no run yet
    "resume .remediate/journal.sqlite --notify "
    "sns:arn:aws:sns:us-east-1:123456789012:outage-bridge": 1,
    "plan playbooks/ec2-offline-repair.yaml --region eu-west-1 --param "
    "rescue_image_id=ami-0abc...": 1,  # a placeholder, not an AMI id
    "run playbooks/ec2-offline-repair.yaml --yes --stop-on-alarm payments-5xx --report "
    "html:reports/run.html": 1,  # no such alarm
    "plan playbooks/ec2-offline-repair.yaml --out plan.json": 0,
    "run --plan plan.json --report json:reports/run.json": 1,  # no terminal, no --yes
    "run playbooks/ec2-offline-repair.yaml --retry-failed reports/run.json": 1,  # no report
    # The sandbox's roots have no snapshot (and its caller is no IAM role): not ready.
    "readiness playbooks/ec2-offline-repair.yaml --max-snapshot-age 24h --report "
    "sarif:reports/readiness.sarif": 2,
    "run playbooks/ec2-reboot-first.yaml --lock-table remediate-leases": 1,  # no terminal
    "resume .remediate/journal.sqlite --lock-table remediate-leases": 1,
    "export playbooks/ec2-reboot-first.yaml -o reboot-first.asl.json": 0,
    "deploy playbooks/ec2-reboot-first.yaml --role-arn "
    "arn:aws:iam::123456789012:role/remediate-sfn": 0,
    "resume arn:aws:states:us-east-1:123456789012:execution:ec2-reboot-first:r20240719-...": 1,
    "deploy playbooks/ec2-reboot-first.yaml --role-arn ARN --items-bucket my-remediate-items": 0,
}


def test_every_readme_command_is_run_here() -> None:
    assert [shlex.join(args) for args in COMMANDS] == list(EXIT_CODES)


@pytest.mark.slow
def test_every_readme_command_ends_without_a_traceback(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=2)
    work = tmp_path / "work"
    work.mkdir()
    (work / "playbooks").symlink_to(ROOT / "playbooks")
    before = server.root_states()

    codes, last = {}, {}
    for i, args in enumerate(COMMANDS):
        process = remediate(args, server.env(tmp_path / "crashes"), tmp_path / f"{i}.log",
                            scaled=False, cwd=work)
        command = shlex.join(args)
        codes[command] = process.finish(120)
        said = process.stdout() + process.stderr()
        assert "Traceback" not in said and "internal error" not in said \
            and "unexpected error" not in said, (command, said)
        last[command] = said.splitlines()[-1]

    assert codes == EXIT_CODES
    assert last["plan playbooks/ec2-offline-repair.yaml --region eu-west-1 --param "
                "rescue_image_id=ami-0abc..."] == (
        "error: --param rescue_image_id=ami-0abc...: steps prepare_rescue (rescue.prepare), "
        "attach (rescue.attach_volume) with.rescue_image_id: expected an AMI id (ami-...) or "
        "resolve:ssm:PARAMETER, found 'ami-0abc...' (a string)")
    assert last["run --plan plan.json --report json:reports/run.json"] == (
        "error: refusing to change anything without confirmation: stdin is not a terminal; "
        "review `remediate plan` and pass --yes")
    assert last["run playbooks/ec2-offline-repair.yaml --retry-failed reports/run.json"] == (
        "error: --retry-failed reports/run.json: no such file, and not a run id (expected a "
        "JSON report written by --report json:PATH, a journal, or a run id such as "
        "r20240719-053000-a1b2c3)")
    assert last["run playbooks/ec2-offline-repair.yaml --yes --stop-on-alarm payments-5xx "
                "--report html:reports/run.html"] == (
        "error: --stop-on-alarm payments-5xx: no CloudWatch alarm of that name in "
        "default/us-east-1 (DescribeAlarms); check the name (it is case-sensitive) with `aws "
        "cloudwatch describe-alarms --alarm-names payments-5xx`")
    assert server.root_states() == before
