"""The base of every reporter: routes each event to ``on_<event_name>``, ignores the rest.

The executor may publish event types a reporter has never heard of; those are
ignored rather than treated as errors. A handler that raises is logged and
counted here, so a reporter stays harmless even when called outside the
:class:`~remediate.executor.events.EventBus` (which also catches).
"""

from __future__ import annotations

import logging
import re
from functools import cache

from remediate.executor.events import Event

log = logging.getLogger(__name__)


@cache
def handler_name(event_name: str) -> str:
    """``StepFinished`` -> ``on_step_finished``."""
    return "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", event_name).lower()


class Subscriber:
    """Subclasses define ``on_run_started(event)``, ``on_step_finished(event)``, ..."""

    failures: int = 0

    def __call__(self, event: Event) -> None:
        handler = getattr(self, handler_name(type(event).__name__), None)
        try:
            self.seen(event)
            if handler is not None:
                handler(event)
        except Exception:
            self.failures += 1
            log.exception("%s failed on %s; the run goes on", type(self).__name__,
                          type(event).__name__)

    def seen(self, event: Event) -> None:
        """Called for every event, known or not, before its ``on_`` handler."""
