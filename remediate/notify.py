"""``--notify sns:TOPIC_ARN``: tell the people waiting on the outage how the fix is going.

A subscriber that publishes the run's start, each batch's outcome and the final
summary to an SNS topic. Publishing failures are logged, never fatal: a missing
notification must not stop a recovery.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from remediate.errors import UserError
from remediate.executor.events import BatchFinished, Event, RunFinished, RunStarted

log = logging.getLogger(__name__)


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


class SnsNotifier:
    """Publishes a few messages per run; ``publish`` is (subject, message) -> None."""

    def __init__(self, topic_arn: str, publish: Callable[[str, str], None]) -> None:
        self.topic_arn = topic_arn
        self._publish = publish
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
                        "succeeded": event.succeeded, "failed": event.failed})
        elif isinstance(event, RunFinished):
            self._send(f"remediate {self._playbook}: finished",
                       {"run_id": event.run_id, "summary": event.summary})

    def _send(self, subject: str, body: dict[str, Any]) -> None:
        try:
            self._publish(subject[:100], json.dumps(body, indent=2))
        except Exception:
            log.exception("could not publish to %s; the run goes on", self.topic_arn)


def sns_publisher(client: Any, topic_arn: str) -> Callable[[str, str], None]:
    def publish(subject: str, message: str) -> None:
        client.publish(TopicArn=topic_arn, Subject=subject, Message=message)

    return publish
