"""``--stop-on-alarm NAME``: no new target starts once a CloudWatch alarm is in ALARM.

As SSM Automation's ``AlarmConfiguration`` does for an automation
(https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_AlarmConfiguration.html):
the run watches the alarms it is given and, when one is in ``ALARM``, stops starting
targets; targets in flight finish their steps (a half-done volume swap is worse than
a finished one), the rest end ``skipped``, "not started", naming the alarm. An
alarm whose state cannot be read stops the run too, as ``IgnorePollAlarmFailure``'s
default (false) does there, but only after :data:`FAILED_POLLS_TO_STOP` failed polls
in a row: one throttled DescribeAlarms must not end a fleet's repair.

Each alarm is looked up, with DescribeAlarms, in every account and Region the run
has targets in, before anything starts (:meth:`AlarmWatch.check`): a name found in
none of them is a typo and fails the command; an alarm already in ALARM fails it too
(nothing would start). The run then watches each alarm where it was found; the
journal keeps the names, and ``resume`` watches them again.

Polls run from the scheduler as a keepalive pump (the same way the lease table is
renewed), every :data:`POLL_INTERVAL` seconds of the run's clock, so a run on a
virtual clock polls in simulated time; and once more before each batch starts.
Within a batch, a target may start up to one interval after the alarm went off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from remediate.clock import Clock
from remediate.errors import UserError
from remediate.executor.calls import ClientLookup
from remediate.executor.events import EventBus, Notice
from remediate.executor.scheduler import Scheduler

# The shortest period a CloudWatch alarm evaluates over is 10 seconds (a high-resolution
# alarm: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
# "high-resolution alarm ... period of 10 seconds"), so polling more often learns nothing
# new. One DescribeAlarms per account and Region every 10 s is a small share of the
# account's DescribeAlarms quota, which dashboards and consoles spend too
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html).
POLL_INTERVAL: Final = 10.0
FAILED_POLLS_TO_STOP: Final = 3
# DescribeAlarms takes at most 100 AlarmNames
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html).
NAMES_PER_CALL: Final = 100
ALARM: Final = "ALARM"
Place = tuple[str, str]  # (account label, Region)


class AlarmNotFound(UserError):
    """A ``--stop-on-alarm`` name is no alarm in any account and Region of the run."""


@dataclass(frozen=True)
class AlarmFiring:
    """Why the run stops starting targets: an alarm in ALARM, or one it cannot read."""

    alarm: str
    account: str
    region: str
    reason: str

    def text(self) -> str:
        return f"alarm {self.alarm} ({self.account}/{self.region}) {self.reason}"


def _describe(client: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Alarm name -> its DescribeAlarms entry (metric and composite alarms alike); one
    request per :data:`NAMES_PER_CALL` names."""
    found: dict[str, dict[str, Any]] = {}
    for first in range(0, len(names), NAMES_PER_CALL):
        for page in client.get_paginator("describe_alarms").paginate(
                AlarmNames=list(names[first:first + NAMES_PER_CALL]),
                AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
            for alarm in (*page.get("MetricAlarms", ()), *page.get("CompositeAlarms", ())):
                found[alarm["AlarmName"]] = alarm
    return found


def _reason(alarm: dict[str, Any]) -> str:
    why = str(alarm.get("StateReason") or "").strip()
    return f"is in ALARM: {why}" if why else "is in ALARM"


class AlarmWatch:
    """The alarms a run stops on, where each was found, and whether one has fired."""

    def __init__(self, names: Sequence[str], clients: ClientLookup, places: Iterable[Place],
                 clock: Clock, interval: float = POLL_INTERVAL) -> None:
        self.names = tuple(dict.fromkeys(names))
        self.clients = clients
        self.places = tuple(sorted(set(places)))
        self.clock = clock
        self.interval = interval
        self.watched: dict[Place, tuple[str, ...]] = {}
        self.fired: AlarmFiring | None = None
        self._next = 0.0
        self._failures = 0
        self._bus: EventBus | None = None
        self._on_fire: Callable[[AlarmFiring], None] = lambda firing: None

    def check(self) -> None:
        """Before the run: every alarm exists in one of the run's places, none in ALARM."""
        seen: dict[str, list[Place]] = {name: [] for name in self.names}
        for place in self.places:
            client = self.clients(place[0], place[1], "cloudwatch")
            try:
                found = _describe(client, self.names)
            except (ClientError, BotoCoreError) as exc:
                raise UserError(f"--stop-on-alarm: could not read CloudWatch alarms in "
                                f"{place[0]}/{place[1]} (DescribeAlarms): {exc}") from None
            for name, alarm in found.items():
                if name not in seen:
                    continue
                seen[name].append(place)
                if alarm.get("StateValue") == ALARM:
                    raise UserError(f"--stop-on-alarm {name}: the alarm is in ALARM already "
                                    f"in {place[0]}/{place[1]} ({alarm.get('StateReason', '')})"
                                    "; nothing was started: try again once it is OK")
        where = ", ".join(f"{a}/{r}" for a, r in self.places)
        for name, places in seen.items():
            if not places:
                raise AlarmNotFound(
                    f"--stop-on-alarm {name}: no CloudWatch alarm of that name in {where} "
                    "(DescribeAlarms); check the name (it is case-sensitive) with `aws "
                    f"cloudwatch describe-alarms --alarm-names {name}`")
        self.watched = {place: tuple(n for n in self.names if place in seen[n])
                        for place in self.places if any(place in seen[n] for n in self.names)}

    def attach(self, scheduler: Scheduler, bus: EventBus,
               on_fire: Callable[[AlarmFiring], None]) -> None:
        """Poll while ``scheduler`` runs; ``on_fire`` is called once, when one fires."""
        self._bus, self._on_fire = bus, on_fire
        self._next = self.clock.now()
        scheduler.add_pump(self.pump, keepalive=True)

    def pump(self) -> float | None:
        """Poll if due; when the next poll is due (None once an alarm has fired)."""
        if self.fired is not None:
            return None
        now = self.clock.now()
        if now < self._next:
            return self._next
        self._next = now + self.interval
        firing = self.poll()
        if firing is not None:
            self.fired = firing
            self._on_fire(firing)
            return None
        return self._next

    def read_now(self) -> None:
        """Poll now, due or not: before a batch starts (one call per batch), so a batch
        never starts on a reading up to :data:`POLL_INTERVAL` old."""
        if self.fired is None:
            self._next = self.clock.now()
            self.pump()

    def poll(self) -> AlarmFiring | None:
        """Read every watched alarm once; the first in ALARM (or unreadable too long)."""
        for (account, region), names in self.watched.items():
            try:
                found = _describe(self.clients(account, region, "cloudwatch"), names)
            except (ClientError, BotoCoreError) as exc:
                return self._failed(account, region, names, str(exc))
            for name in names:
                alarm = found.get(name)
                if alarm is None:
                    return self._failed(account, region, (name,), "the alarm was deleted")
                if alarm.get("StateValue") == ALARM:
                    return AlarmFiring(name, account, region, _reason(alarm))
        self._failures = 0
        return None

    def _failed(self, account: str, region: str, names: Sequence[str],
                error: str) -> AlarmFiring | None:
        self._failures += 1
        alarms = ", ".join(names)
        if self._failures >= FAILED_POLLS_TO_STOP:
            return AlarmFiring(alarms, account, region,
                               f"could not be read {self._failures} times in a row ({error})")
        if self._bus is not None:
            self._bus.publish(Notice("warning", f"--stop-on-alarm: could not read alarm "
                                                f"{alarms} in {account}/{region}: {error}; "
                                                f"trying again in {self.interval:g}s"))
        return None
