"""``--notify sns:TOPIC_ARN``: tell the people waiting on the outage how the fix is going.

A subscriber that publishes the run's start, each batch's outcome, a
``--stop-on-alarm`` alarm that stopped it, and the final
summary to an SNS topic. The topic is checked before the run starts
(GetTopicAttributes: a typo in the ARN fails the command in one line); a publish
that fails later is a one-line warning, never fatal: a missing notification must
not stop a recovery.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from remediate.aws.errors import from_exception
from remediate.errors import UserError
from remediate.executor.events import (
    AlarmStopped,
    BatchFinished,
    Event,
    RunFinished,
    RunStarted,
)

log = logging.getLogger(__name__)
Warn = Callable[[str], None]


class NotifySpecError(UserError):
    pass


def parse_notify(spec: str) -> str:
    """The topic ARN of ``sns:arn:aws:sns:REGION:ACCOUNT:NAME``."""
    scheme, _, arn = spec.partition(":")
    if scheme != "sns" or not arn.startswith("arn:aws") or arn.count(":") < 5:
        raise NotifySpecError(f"--notify {spec}: expected sns:TOPIC_ARN, e.g. "
                              "sns:arn:aws:sns:us-east-1:123456789012:outage-bridge")
    return arn


def topic_region(arn: str) -> str:
    return arn.split(":")[3]


def check_topic(client: Any, arn: str) -> None:
    """The topic exists and this caller may read it (GetTopicAttributes), or a one-line
    :class:`NotifySpecError`."""
    try:
        client.get_topic_attributes(TopicArn=arn)
    except Exception as exc:
        error = from_exception(exc, "GetTopicAttributes")
        if error.code == "NotFound":
            raise NotifySpecError(f"--notify: SNS topic {arn} does not exist ({error})") from None
        raise NotifySpecError(f"--notify: cannot use SNS topic {arn}: {error}") from None


def sns_notifier(spec: str, client_for: Callable[[str], Any], warn: Warn, *,
                 check: bool = True) -> SnsNotifier:
    """The subscriber for ``--notify spec``; ``client_for(region)`` gives an SNS client.
    The topic is checked first, unless the caller ``check``ed it already."""
    arn = parse_notify(spec)
    client = client_for(topic_region(arn))
    if check:
        check_topic(client, arn)
    return SnsNotifier(arn, sns_publisher(client, arn), warn)


class SnsNotifier:
    """Publishes a few messages per run; ``publish`` is (subject, message) -> None;
    ``warn`` gets one line when a publish fails (default: a logged warning)."""

    def __init__(self, topic_arn: str, publish: Callable[[str, str], None],
                 warn: Warn | None = None) -> None:
        self.topic_arn = topic_arn
        self._publish = publish
        self._warn: Warn = warn or log.warning
        self._playbook = ""
        self._run_id = ""

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._playbook, self._run_id = event.playbook, event.run_id
            mode = "dry run" if event.dry_run else "run"
            self._send(f"remediate {mode} started: {event.playbook}",
                       {"run_id": event.run_id, "targets": len(event.targets),
                        "steps": list(event.steps), "dry_run": event.dry_run})
        elif isinstance(event, BatchFinished):
            self._send(f"remediate {self._playbook}: batch {event.index + 1}/"
                       f"{event.total_batches} done",
                       {"run_id": self._run_id, "batch": event.index + 1,
                        "succeeded": event.succeeded, "failed": event.failed,
                        "rolled_back": event.rolled_back, **dict(event.others)})
        elif isinstance(event, AlarmStopped):
            # What happened first: SNS cuts subjects at 100 characters, a path may be long.
            self._send(f"remediate stopped by alarm {event.alarm}: {self._playbook}",
                       {"run_id": self._run_id, "alarm": event.alarm, "account": event.account,
                        "region": event.region, "reason": event.reason,
                        "in_flight": event.in_flight})
        elif isinstance(event, RunFinished):
            self._send(f"remediate {self._playbook}: finished",
                       {"run_id": event.run_id, "summary": event.summary})

    def _send(self, subject: str, body: dict[str, Any]) -> None:
        try:
            self._publish(subject[:100], json.dumps(body, indent=2))
        except Exception as exc:
            self._warn(f"could not publish {subject!r} to {self.topic_arn}: "
                       f"{from_exception(exc, 'Publish')}; the run goes on")


def sns_publisher(client: Any, topic_arn: str) -> Callable[[str, str], None]:
    def publish(subject: str, message: str) -> None:
        client.publish(TopicArn=topic_arn, Subject=subject, Message=message)

    return publish
