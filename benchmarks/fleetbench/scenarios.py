"""What the benchmark runs: the playbooks, the fleets, and how each is set up.

A :class:`Scenario` is one playbook over one fleet (N broken instances spread over
Regions and two AZs per Region). The sandbox answers like AWS under load: AWS's
EC2 token buckets (``ThrottlePolicy.aws_defaults``) under the scenario's throttle
model (``documented``: a bucket per API, as AWS's page says; ``shared-category``:
one per category, the older reading), optionally with a neighbour spending a share
of every bucket, plus SSM buckets (:data:`SSM_BUCKETS`), and
:class:`~remediate.sandbox.Durations` for every state change: ``Durations.realistic()``
(seeded spreads: Windows boots in 2-5 min, a crash-looping guest stops slowly, a first
snapshot takes time by size) unless the run asks for the fixed figures.

The playbooks are the shipped ones, loaded from ``playbooks/``, with the changes
:func:`prepare` makes (each printed with the results):

- the playbook's rollout batches and canary stay as shipped (what a user gets);
  ``one_batch`` replaces them by one batch, to measure the executor alone;
- optionally another ``execution.concurrency``;
- for the offline repair, ``max_per_az`` of ``rescue.attach_volume`` (rescue
  instances per AZ). The shipped default (2 instances x 11 volume slots per AZ)
  holds ~44 volumes per Region at a time, which caps throughput below what the
  EC2 buckets allow; ``"auto"`` sizes it from the buckets (:func:`rescue_per_az`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from remediate.language.loader import bind_params, load_file
from remediate.language.model import BatchSize, Playbook
from remediate.sandbox import Bucket, Durations, FleetSpec, Neighbour, ThrottlePolicy
from remediate.sandbox.fleet import DEFAULT_ACCOUNT

ROOT: Final = Path(__file__).resolve().parents[2]
PLAYBOOK_FILES: Final = {
    "offline-repair": ROOT / "playbooks" / "ec2-offline-repair.yaml",
    "reboot-first": ROOT / "playbooks" / "ec2-reboot-first.yaml",
}
REGIONS: Final = ("us-east-1", "us-west-2", "eu-west-1")
FIRST_ACCOUNT: Final = DEFAULT_ACCOUNT
"""A scenario's first account is the sandbox's default one; others are made up."""
AZS_PER_REGION: Final = 2
RESCUE_SLOTS: Final = 11
"""Volumes one rescue instance holds at once (xvdf..xvdp)."""

SSM_BUCKETS: Final[Mapping[str, Bucket]] = {
    "ssm:SendCommand": Bucket(20, 5),
    "ssm:GetCommandInvocation": Bucket(40, 20),
    "ssm:ListCommandInvocations": Bucket(40, 20),
    "ssm:DescribeInstanceInformation": Bucket(40, 20),
    "ssm:GetParameter": Bucket(40, 40),
}
"""SSM publishes no token buckets; these equal remediate's conservative defaults
(``ssm.send-command`` 20/5, ``ssm.describe`` 40/20, ``ssm.get-parameter`` 40/40). The
sandbox keeps one bucket per operation, so its reads are looser than remediate's shared
``ssm.describe``."""


def throttle_policy(scenario: Scenario | None = None) -> ThrottlePolicy:
    """AWS's EC2 buckets under the scenario's model and neighbour, plus
    :data:`SSM_BUCKETS` (the documented model, no neighbour, without a scenario)."""
    if scenario is None:
        return ThrottlePolicy.aws_defaults(SSM_BUCKETS)
    neighbour = Neighbour(scenario.neighbour) if scenario.neighbour else None
    return ThrottlePolicy.aws_defaults(SSM_BUCKETS, model=scenario.throttle_model,
                                       neighbour=neighbour)


@dataclass(frozen=True)
class Scenario:
    playbook: str
    """A key of :data:`PLAYBOOK_FILES`."""
    targets: int
    regions: int = 1
    reboots_to_fix: int = 2
    """Reboot-first: reboots each instance needs before it comes back."""
    throttle_model: str = "documented"
    """How the sandbox shares EC2's buckets (remediate.sandbox.throttling.MODELS)."""
    neighbour: float = 0.0
    """Share of every EC2 bucket's refill another tool in the account spends."""
    accounts: int = 1
    """Sandbox accounts the fleet is spread over (each has every Region of the scenario)."""

    @property
    def places(self) -> int:
        """(account, Region) pairs the fleet spans: each has its own buckets."""
        return self.accounts * self.regions

    @property
    def account_ids(self) -> tuple[str, ...]:
        return (FIRST_ACCOUNT, *(f"{200000000000 + index:012d}"
                                 for index in range(1, self.accounts)))

    @property
    def region_names(self) -> tuple[str, ...]:
        return REGIONS[: self.regions]

    @property
    def per_region(self) -> int:
        """Targets in the busiest (account, Region) place (the fleet is spread evenly)."""
        return math.ceil(self.targets / self.places)

    @property
    def label(self) -> str:
        where = f"{self.regions} Regions" if self.regions > 1 else "1 Region"
        if self.accounts > 1:
            where = f"{self.accounts} accounts x {where}"
        label = f"{self.playbook}, {self.targets:,} in {where}"
        if self.throttle_model != "documented":
            label += f", {self.throttle_model} buckets"
        if self.neighbour:
            label += f", neighbour {self.neighbour:.0%}"
        return label

    def fleet_specs(self) -> list[FleetSpec]:
        """One fleet per account, the targets spread evenly over the accounts."""
        counts = [self.targets // self.accounts + (index < self.targets % self.accounts)
                  for index in range(self.accounts)]
        return [self._spec(count, account)
                for count, account in zip(counts, self.account_ids, strict=True)]

    def fleet_spec(self) -> FleetSpec:
        """The first account's fleet (the whole fleet with one account)."""
        return self.fleet_specs()[0]

    def _spec(self, targets: int, account: str) -> FleetSpec:
        regions = self.region_names
        if self.playbook == "reboot-first":
            return FleetSpec(plain=0, reboot_fixable=targets,
                             reboots_to_fix=self.reboots_to_fix, azs=AZS_PER_REGION,
                             regions=regions, account=account)
        return FleetSpec(plain=targets, azs=AZS_PER_REGION, regions=regions, account=account)


@dataclass(frozen=True)
class Setup:
    """How the playbook is run: the knobs :func:`prepare` turns."""

    one_batch: bool = False
    """Replace the playbook's rollout batches by one (default: as shipped)."""
    concurrency: int | None = None
    rescue_per_az: int | None = None
    """None: the playbook's own setting."""
    params: tuple[tuple[str, str], ...] = ()
    """Playbook parameters, as ``remediate run --param NAME=VALUE`` sets them (each
    given to the playbooks that declare it)."""


def load(name: str) -> Playbook:
    loaded = load_file(PLAYBOOK_FILES[name])
    if loaded.playbook is None:
        raise RuntimeError(f"{PLAYBOOK_FILES[name]} does not validate: {loaded}")
    return loaded.playbook


def prepare(playbook: Playbook, setup: Setup) -> Playbook:
    """The playbook with the benchmark's changes (see the module docstring)."""
    guards = playbook.guards
    if setup.one_batch:
        guards = dataclasses.replace(guards, batches=(BatchSize(percent=100.0),))
    guards = dataclasses.replace(guards, pause_after_canary=False)
    execution = playbook.execution
    if setup.concurrency is not None:
        execution = dataclasses.replace(execution, concurrency=setup.concurrency)
    steps = playbook.steps
    if setup.rescue_per_az is not None:
        steps = tuple(
            dataclasses.replace(s, params={**s.params, "max_per_az": setup.rescue_per_az})
            if s.action == "rescue.attach_volume" else s
            for s in steps)
    return dataclasses.replace(playbook, guards=guards, execution=execution, steps=steps)


def params_for(playbook: Playbook, given: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The run's parameters: the defaults and the ``given`` ones the playbook declares.
    The offline repair's rescue image keeps its default, ``resolve:ssm:`` AWS's public
    Windows Server 2022 parameter, which the sandbox has in every Region as AWS does."""
    overrides = {name: value for name, value in (given or {}).items()
                 if name in playbook.parameters}
    values, errors = bind_params(playbook, overrides)
    if errors:
        raise RuntimeError("; ".join(errors))
    return values


RESCUE_HEADROOM: Final = 2.0
"""Slots beyond Little's law: under load the attach and the detach also wait in the
mutating bucket's queue while the volume holds its slot. Measured at 1,000 targets,
concurrency 500: 6 per AZ (1.5x) made 1.31x the bound, 8 per AZ (2x) 1.19x."""


def rescue_per_az(durations: Durations, poll_interval: float, rate: float) -> int:
    """Rescue instances per AZ so volume slots do not limit a run at ``rate`` targets/s
    per Region: a volume holds its slot for attach + repair + detach, each noticed up
    to one poll interval late (Little's law: slots = rate x holding time), plus
    :data:`RESCUE_HEADROOM`."""
    holding = (durations.typical("volume_attach") + durations.typical("ssm_command")
               + durations.typical("volume_detach") + 3 * poll_interval)
    slots = RESCUE_HEADROOM * rate * holding
    return max(1, math.ceil(slots / (RESCUE_SLOTS * AZS_PER_REGION)))
