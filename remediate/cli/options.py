"""Options `run`, `plan` and `resume` share, and turning them into a run's pieces."""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from remediate.aws.apis import DEFAULT_BUCKETS, RATE_LIMIT_NAMES, Bucket
from remediate.cli.exitcodes import UserError
from remediate.findings import ACKNOWLEDGEABLE
from remediate.language.schema import did_you_mean

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_JOURNAL = ".remediate/journal.sqlite"


def _packing(func: F, cls: type, key: str, options: Sequence[Callable[[F], F]]) -> F:
    """Apply click ``options``, then hand them to ``func`` packed as one ``cls`` value,
    as its keyword argument ``key``."""
    names = [f.name for f in fields(cls)]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # A field without its option here (e.g. plan has no --journal) keeps its default.
        kwargs[key] = cls(**{name: kwargs.pop(name) for name in names if name in kwargs})
        return func(*args, **kwargs)

    packed: Any = wrapper
    for option in reversed(options):
        packed = option(packed)
    return packed


@dataclass(frozen=True)
class TargetArgs:
    target_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    profile: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class ExecutionArgs:
    params: tuple[str, ...] = ()
    concurrency: int | None = None
    rate_limits: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()
    reports: tuple[str, ...] = ()
    journal_path: str = DEFAULT_JOURNAL
    progress: bool | None = None
    clock_factor: float | None = None


CLOCK_FACTOR_HELP = ("Rehearsals against `remediate sandbox serve --clock-factor F`: the "
                     "tool's own waits (polls, backoff, pacing) run F times faster too.")


class FiniteFloat(click.FloatRange):
    """A number within bounds, never nan or inf: nan compares false with every bound, so
    click's FloatRange lets it (and inf, without a maximum) through."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


# Simulated seconds per real second (--clock-factor): a positive, finite number.
CLOCK_FACTOR = FiniteFloat(min=0, min_open=True)


def clock_factor_option(func: F) -> F:
    """Hidden: only for the sandbox server, whose state changes run F times faster."""
    return click.option("--clock-factor", type=CLOCK_FACTOR, metavar="F", hidden=True,
                        help=CLOCK_FACTOR_HELP)(func)


def notify_option(func: F) -> F:
    """``--notify sns:TOPIC_ARN`` (run and resume)."""
    return click.option("--notify", metavar="sns:TOPIC_ARN",
                        help="Publish the start, each batch and the summary to an SNS topic "
                             "(checked before the run starts).")(func)


def target_options(func: F) -> F:
    """How to narrow or override the playbook's target selector (``targets: TargetArgs``)."""
    return _packing(func, TargetArgs, "targets", [
        click.option("--target-ids", "target_ids", multiple=True, metavar="ID[,ID...]",
                     help="Only these targets (repeatable, comma-separated)."),
        click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
                     help="Targets with this tag (repeatable; replaces the playbook's value "
                          "for that key)."),
        click.option("--filter", "filters", multiple=True, metavar="NAME=VALUES",
                     help="An EC2 filter, e.g. instance-type=m5.large,m5.xlarge (repeatable)."),
        click.option("--region", "regions", multiple=True, metavar="REGION",
                     help="Regions to search (repeatable; replaces the playbook's)."),
        click.option("--profile", metavar="NAME", help="AWS profile (default: AWS_PROFILE)."),
        click.option("--limit", type=click.IntRange(min=1), metavar="N",
                     help="At most N targets (the first N by account, Region, id)."),
    ])


def _shared_execution_options() -> list[Callable[[F], F]]:
    return [
        click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                     help="Set a playbook parameter (repeatable)."),
        click.option("--concurrency", type=click.IntRange(min=1), metavar="N",
                     help="Targets in flight at once per account and Region "
                          "(default: the playbook's)."),
        click.option("--rate-limit", "rate_limits", multiple=True, metavar="BUCKET=BURST/RATE",
                     help="Override an API bucket, e.g. ec2.mutating=20/2 (repeatable)."),
        click.option("--accept", "accepted", multiple=True,
                     type=click.Choice(ACKNOWLEDGEABLE),
                     help="Accept a destructive finding for this run (repeatable)."),
        click.option("--report", "reports", multiple=True, metavar="FORMAT:PATH",
                     help="Write a report: json:PATH, junit:PATH, md:PATH or html:PATH "
                          "(repeatable)."),
        clock_factor_option,
    ]


def execution_options(func: F) -> F:
    """How to run (``execution: ExecutionArgs``)."""
    return _packing(func, ExecutionArgs, "execution", [
        *_shared_execution_options(),
        click.option("--journal", "journal_path", default=DEFAULT_JOURNAL, show_default=True,
                     type=click.Path(dir_okay=False),
                     help="The run's journal (what `remediate resume` continues)."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bars (default: when stderr is a terminal)."),
    ])


def audit_options(func: F) -> F:
    """``execution_options`` less what a dry run has no use for (no journal, no progress
    bars: it changes nothing and takes no time)."""
    return _packing(func, ExecutionArgs, "execution", _shared_execution_options())


def new_run_id() -> str:
    return datetime.now(UTC).strftime("r%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def parse_params(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def parse_rate_limits(items: tuple[str, ...]) -> dict[str, Bucket]:
    out: dict[str, Bucket] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        burst, slash, rate = spec.partition("/")
        try:
            if not sep or not slash:
                raise ValueError(item)
            bucket = Bucket(float(burst), float(rate))
            if not (math.isfinite(bucket.capacity) and math.isfinite(bucket.refill)) \
                    or bucket.capacity < 1 or bucket.refill <= 0:
                raise ValueError(item)
        except ValueError:
            raise UserError(f"--rate-limit expects BUCKET=BURST/RATE (e.g. ec2.mutating=50/5), "
                            f"got {item!r}") from None
        if name not in RATE_LIMIT_NAMES:
            hint = did_you_mean(name, RATE_LIMIT_NAMES)
            raise UserError(f"--rate-limit: unknown bucket {name!r}{f' ({hint})' if hint else ''}"
                            "; name a category (every API of it: "
                            + ", ".join(DEFAULT_BUCKETS)
                            + ") or one EC2 API (e.g. ec2.AttachVolume)")
        out[name] = bucket
    return out


def split_ids(items: tuple[str, ...], option: str = "--target-ids") -> tuple[str, ...]:
    """Comma-separated values; an empty one is refused, never read as "no filter" (an
    unset shell variable in ``--target-ids "$IDS"`` must not select the whole fleet)."""
    out = tuple(i.strip() for item in items for i in item.split(","))
    if "" in out:
        raise UserError(f"{option} has an empty value ({', '.join(map(repr, items))}): give "
                        "at least one id, or leave the option out to use the playbook's "
                        "selector")
    return out


