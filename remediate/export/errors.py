"""The one error export raises: a playbook (or part of it) that Step Functions cannot run."""

from __future__ import annotations


class NotExportable(Exception):
    """``action`` (an action name, or a playbook feature like ``when``) cannot be expressed
    in Amazon States Language; ``reason`` says why and what to do instead."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action} cannot be exported to Step Functions: {reason}")
        self.action = action
        self.reason = reason
