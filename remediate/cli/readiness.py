"""`remediate readiness`: the scorecard an SRE runs daily in CI, before any incident.

It selects targets as `run` does (the playbook's selector, narrowed or overridden
by the same options, across its accounts and Regions), runs the read-only checks of
:mod:`remediate.readiness` on them, prints the scorecard and writes any reports.
Exit 0 ready, 2 when a check failed, 1 on bad input (nothing is looked up then).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from remediate.cli import exitcodes
from remediate.cli.exitcodes import UserError
from remediate.cli.options import TargetArgs, parse_params, target_options
from remediate.destinations import check_destination
from remediate.language.durations import format_duration, parse_duration
from remediate.language.model import Playbook, TargetSelector
from remediate.language.template import as_references, substitute
from remediate.permissions import policy_document
from remediate.readiness.check import Settings
from remediate.readiness.model import Scorecard
from remediate.readiness.reports import FORMATS

if TYPE_CHECKING:
    from remediate.cli.launch import Environment

RESCUE_ACTION = "rescue.attach_volume"
REPAIR_ACTION = "rescue.repair"
OPERATOR_ARN = r"arn:aws[\w-]*:(iam::\d{12}:(role|user)|sts::\d{12}:assumed-role)/\S+"


def _report_specs(items: tuple[str, ...]) -> list[tuple[str, str]]:
    """``FORMAT:PATH`` pairs, each checked writable before any AWS call."""
    specs = []
    for item in items:
        name, sep, path = item.partition(":")
        if name not in FORMATS or not sep or not path:
            raise UserError(f"--report expects FORMAT:PATH with FORMAT one of "
                            f"{', '.join(FORMATS)}, got {item!r}")
        check_destination(path, f"--report {item}")
        specs.append((name, path))
    return specs


def _max_age(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None or seconds <= 0:
        raise UserError(f"--max-snapshot-age expects a duration above 0 such as 24h, 36h "
                        f"or 7d, got {text!r}")
    return seconds


def _operator_arn(arn: str | None) -> str | None:
    if arn is not None and not re.fullmatch(OPERATOR_ARN, arn):
        raise UserError(f"--operator-arn expects an IAM role or user ARN (arn:aws:iam::"
                        f"123456789012:role/NAME), got {arn!r}")
    return arn


def settings(playbook: Playbook, params: Mapping[str, Any], max_age: float,
             operator_arn: str | None, selector: TargetSelector | None = None) -> Settings:
    """What the checks hold the fleet to: the rescue step's image, type and pool size as
    the playbook's bound parameters set them."""
    known = as_references(params)
    step = next((s for s in playbook.steps if s.action == RESCUE_ACTION), None)
    given = {} if step is None else substitute(dict(step.params), known)
    image = given.get("rescue_image_id")
    return Settings(rescue_image=str(image) if step is not None and image else None,
                    rescue_instance_type=str(given.get("instance_type", "m5.large")),
                    rescue_per_az=int(given.get("max_per_az", 8)),
                    rescue_instance_profile=str(given.get("instance_profile") or "") or None,
                    max_snapshot_age=max_age, max_snapshot_age_text=format_duration(max_age),
                    operator_arn=operator_arn, playbook=playbook.source,
                    needed_policy=policy_document(playbook, selector),
                    bitlocker_keys=_bitlocker_keys(playbook, known))


def _bitlocker_keys(playbook: Playbook, known: Mapping[str, Any]) -> str | None:
    """Where the repair step looks for BitLocker recovery keys (None: nowhere)."""
    step = next((s for s in playbook.steps if s.action == REPAIR_ACTION), None)
    keys = None if step is None else substitute(dict(step.params), known).get("bitlocker_keys")
    return str(keys) if keys else None


def _write(path: str, content: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(content)


@dataclass(frozen=True)
class ReadinessRequest:
    """What the command line asks for (also what benchmarks/readiness_bench.py sends)."""

    playbook: str
    targets: TargetArgs = field(default_factory=TargetArgs)
    params: tuple[str, ...] = ()
    max_snapshot_age: str = "24h"
    operator_arn: str | None = None


def scorecard(request: ReadinessRequest, env: Environment) -> Scorecard:
    """Load the playbook, find its targets as `run` does, run every check."""
    from remediate.aws.clients import ClientFactory
    from remediate.cli.launch import accounts_of, bound_params, target_overrides
    from remediate.cli.playbook_arg import load_or_fail
    from remediate.discovery import discover, select
    from remediate.readiness.runner import run

    max_age = _max_age(request.max_snapshot_age)
    _operator_arn(request.operator_arn)
    loaded = load_or_fail(request.playbook)
    if loaded.targets.kind != "ec2-instance":
        raise UserError(f"{request.playbook}: readiness checks EC2 playbooks (targets.kind "
                        f"ec2-instance), this one selects {loaded.targets.kind}")
    bound = bound_params(loaded, parse_params(request.params))
    targets = request.targets
    overrides = target_overrides(targets)
    factory = ClientFactory(accounts_of(loaded, targets.profile), run_id="readiness",
                            session=env.session, endpoint_url=env.endpoint_url, dry_run=True)
    notices: list[str] = []
    found = discover(loaded.targets, factory, overrides, clock=env.clock, warn=notices.append)
    for notice in notices:
        click.echo(f"warning: {notice}", err=True)
    return run(found, factory, env.clock,
               settings(loaded, bound, max_age, request.operator_arn,
                        select(loaded.targets, overrides)))


@click.command(epilog=exitcodes.EPILOG)
@click.argument("playbook", type=click.Path(dir_okay=False))
@target_options
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Set a playbook parameter (repeatable), e.g. rescue_image_id=ami-...")
@click.option("--max-snapshot-age", default="24h", show_default=True, metavar="DURATION",
              help="Newest completed snapshot of each root volume must be younger.")
@click.option("--operator-arn", metavar="ARN",
              help="Judge IAM and KMS permissions for this role, or the role of its name in "
                   "each account (default: the caller's).")
@click.option("--format", "out_format", type=click.Choice(list(FORMATS)), default="text",
              show_default=True, help="How to print the scorecard on stdout.")
@click.option("--report", "reports", multiple=True, metavar="FORMAT:PATH",
              help="Also write the scorecard: text:, json:, md: or sarif:PATH (repeatable).")
def readiness(playbook: str, targets: TargetArgs, params: tuple[str, ...],
              max_snapshot_age: str, operator_arn: str | None, out_format: str,
              reports: tuple[str, ...]) -> int:
    """Check, before an incident, that PLAYBOOK could recover its targets: the rescue
    image resolves in every Region and differs from each target's image; every root
    volume has a recent snapshot; the root volumes' KMS keys are enabled and usable;
    the vCPU and snapshot quotas leave room; the operator's role has the playbook's IAM
    policy. One scorecard per account and Region; each failure says how to fix it.
    Read-only: it needs the read calls of `remediate iam-policy` plus kms:GetKeyPolicy,
    kms:ListGrants, servicequotas:GetServiceQuota and iam:SimulatePrincipalPolicy."""
    from remediate.cli import launch

    _max_age(max_snapshot_age)  # a typo fails before anything is read
    _operator_arn(operator_arn)
    specs = _report_specs(reports)
    card = scorecard(ReadinessRequest(playbook, targets, params, max_snapshot_age,
                                      operator_arn), launch.Environment())
    click.echo(FORMATS[out_format](card), nl=False)
    for name, path in specs:
        _write(path, FORMATS[name](card))
    return exitcodes.OK if card.ready else exitcodes.TARGETS_FAILED
