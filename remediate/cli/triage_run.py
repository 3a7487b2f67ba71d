"""What `remediate triage` does, apart from its options: select, read, judge, print, tag."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import click

from remediate.actions.contract import Target
from remediate.cli import exitcodes
from remediate.cli.options import TargetArgs, split_ids
from remediate.errors import UserError
from remediate.language.model import Account, TargetSelector

if TYPE_CHECKING:
    from remediate.aws.clients import ClientFactory
    from remediate.cli.launch import Environment
    from remediate.clock import Clock

TRIAGE_KINDS = {"all": ("ec2-instance", "workspace"), "ec2-instance": ("ec2-instance",),
                "workspace": ("workspace",)}


@dataclass(frozen=True)
class TriageRequest:
    targets: TargetArgs
    kind: str = "all"
    output: str = "text"
    tag_classes: bool = False


ID_PREFIXES = {"ec2-instance": "i-", "workspace": "ws-"}


def _select(request: TriageRequest, clients: ClientFactory, clock: Clock) -> list[Target]:
    """The targets of each kind asked for; ids given pick their kind by prefix."""
    from remediate.discovery import Overrides, describe, discover, parse_pairs, select

    args = request.targets
    kinds = TRIAGE_KINDS[request.kind]
    if args.filters and len(kinds) > 1:
        raise UserError(f"--filter {args.filters[0]}: instances and WorkSpaces have "
                        "different filters; say which with --kind ec2-instance or --kind "
                        "workspace")
    ids = split_ids(args.target_ids)
    unknown = [i for i in ids if not i.startswith(tuple(ID_PREFIXES[k] for k in kinds))]
    if unknown:
        raise UserError(f"--target-ids {unknown[0]}: not an instance (i-...) or WorkSpace "
                        f"(ws-...) id of the kinds triaged ({', '.join(kinds)})")
    overrides = Overrides(tags=parse_pairs(args.tags, "--tag", split=False),
                          filters=parse_pairs(args.filters, "--filter", split=True),
                          regions=split_ids(args.regions, "--region"))
    found: list[Target] = []
    for kind in kinds:
        own = tuple(i for i in ids if i.startswith(ID_PREFIXES[kind]))
        if ids and not own:
            continue
        found += discover(TargetSelector(kind), clients, replace(overrides, target_ids=own),
                          clock=clock, empty_ok=True,
                          warn=lambda text: click.echo(f"warning: {text}", err=True))
    if not found:
        selector = select(TargetSelector(" or ".join(kinds)),
                          replace(overrides, target_ids=ids))
        raise UserError(f"no targets matched {describe(selector)}")
    return found[:args.limit] if args.limit is not None else found


def run_triage(request: TriageRequest, env: Environment | None = None) -> int:
    from remediate.aws.clients import ClientFactory
    from remediate.aws.ratelimit import RateLimiter
    from remediate.cli.launch import Environment
    from remediate.triage import render
    from remediate.triage.pacing import PacedCalls
    from remediate.triage.reading import read_all
    from remediate.triage.tagging import tag_classes
    from remediate.triage.verdicts import judge

    env = env or Environment()
    accounts: Sequence[Account] = (
        (Account("default", profile=request.targets.profile),) if request.targets.profile
        else ())
    # Without --tag-classes nothing may change: every client refuses mutating calls.
    clients = ClientFactory(accounts, run_id="triage", session=env.session,
                            endpoint_url=env.endpoint_url, dry_run=not request.tag_classes)
    targets = _select(request, clients, env.clock)
    calls = PacedCalls(clients, env.clock, RateLimiter(env.clock))
    readings = read_all(calls, targets)
    verdicts = [judge(reading) for reading in readings]
    failures = tag_classes(calls, verdicts, readings) if request.tag_classes else []
    if request.output == "text":
        click.echo(render.text(verdicts, tagged=request.tag_classes and not failures))
    else:
        click.echo(render.FORMATS[request.output](verdicts))
    for failure in failures:
        click.echo(f"error: {failure}", err=True)
    broken = any(v.broken for v in verdicts)
    return exitcodes.TARGETS_FAILED if broken or failures else exitcodes.OK
