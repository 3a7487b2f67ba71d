"""The shape every readiness check has: the rules it judges, and a function judging them.

A check is one small module under :mod:`remediate.readiness.checks` exporting a
:class:`Check`; :data:`remediate.readiness.checks.CHECKS` lists them in the order they
run and are reported. Adding a check is one new module and one line there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from remediate.readiness.model import Finding, Rule
from remediate.readiness.region import Region


@dataclass(frozen=True)
class Settings:
    """What the operator and the playbook say the checks should hold the fleet to."""

    rescue_image: str | None = None  # the playbook's rescue_image_id (None: no rescue step)
    rescue_instance_type: str = "m5.large"
    rescue_per_az: int = 8
    rescue_instance_profile: str | None = None  # the rescue steps' (None: none, DHMC's)
    max_snapshot_age: float = 24 * 3600.0  # seconds
    max_snapshot_age_text: str = "24h"
    operator_arn: str | None = None  # whose permissions to judge (None: the caller's)
    playbook: str = ""  # its path, as the operator gave it
    needed_policy: Mapping[str, Any] | None = None  # `remediate iam-policy PLAYBOOK`'s
    bitlocker_keys: str | None = None  # the repair step's key escrow (None: not set)


@dataclass(frozen=True)
class Verdict:
    """``rule`` judged ``judged`` resources of a scope; ``failures`` are those that failed."""

    rule: Rule
    judged: int
    failures: list[Finding]


@dataclass(frozen=True)
class Check:
    rules: tuple[Rule, ...]
    run: Callable[[Region, Settings], Iterator[Verdict]]
