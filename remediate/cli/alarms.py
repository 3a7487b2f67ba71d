"""``--stop-on-alarm NAME``: `run` stops starting targets when a CloudWatch alarm fires."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from remediate.clock import Clock
from remediate.errors import UserError

if TYPE_CHECKING:
    from remediate.actions.contract import Target
    from remediate.executor.alarm_watch import AlarmWatch

F = TypeVar("F", bound=Callable[..., Any])


RUN_HELP = ("Stop starting targets when this CloudWatch alarm is in ALARM (repeatable); "
            "targets in flight finish, the others are not started.")
POLICY_HELP = ("The run will be given --stop-on-alarm NAME: allow reading CloudWatch alarms "
               "(cloudwatch:DescribeAlarms).")


def stop_on_alarm_option(func: F, help: str = RUN_HELP) -> F:
    option = click.option("--stop-on-alarm", "stop_on_alarm", multiple=True, metavar="NAME",
                          help=help)
    decorated: F = option(func)
    return decorated


def policy_alarm_option(func: F) -> F:
    """`iam-policy --stop-on-alarm NAME`: the policy of a run given that option."""
    return stop_on_alarm_option(func, POLICY_HELP)


def watch_alarms(names: Sequence[str], targets: Sequence[Target], factory: Any, clock: Clock,
                 *, engine: str = "local") -> AlarmWatch | None:
    """The run's alarm watch, checked (every alarm found, none in ALARM) before anything
    starts; None without ``--stop-on-alarm``."""
    if not names:
        return None
    if engine != "local":
        raise UserError("--stop-on-alarm works with the local engine only: a Step Functions "
                        "execution is not watched from here")
    from remediate.cli.launch import lookup
    from remediate.executor.alarm_watch import AlarmWatch

    watch = AlarmWatch(names, lookup(factory), {(t.account, t.region) for t in targets}, clock)
    watch.check()
    return watch
