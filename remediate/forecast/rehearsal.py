"""The rehearsal: the real executor, on a sandbox rebuilt from the model, simulated time.

Runs in its own process (:mod:`remediate.forecast.child`): the sandbox patches moto
and botocore process-wide, which must never touch the clients of the dry run that
asked. Nothing here reaches AWS: ``mock_aws`` answers every request in-process.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from botocore.config import Config

from remediate.actions.contract import Target
from remediate.aws.apis import Bucket
from remediate.aws.clients import BOTOCORE_RETRIES
from remediate.claims.registry import HostRegistry
from remediate.clock import VirtualClock
from remediate.executor.engine import Executor
from remediate.executor.events import EventBus
from remediate.executor.preflight_policy import PreflightPolicy
from remediate.forecast.model import FleetModel, Forecast
from remediate.journal import Journal
from remediate.language.loader import bind_params, load_file, load_text
from remediate.language.model import Playbook
from remediate.sandbox import Fleet, FleetSpec, Sandbox

_CLIENT_CONFIG = Config(retries=dict(BOTOCORE_RETRIES), max_pool_connections=32)
# Long enough for any stop to settle before the rehearsed run starts.
_SETTLE = 3600.0


def rehearse(model: FleetModel) -> Forecast:
    """Run ``model``'s playbook over its fleet in a fresh sandbox; what the run did."""
    clock = VirtualClock()
    with Sandbox(clock=clock) as sandbox, tempfile.TemporaryDirectory() as folder:
        fleet = sandbox.build_fleet(_spec(model))
        targets = _targets(sandbox, clock, model, fleet)
        playbook = _playbook(model)
        sandbox.reset_api_calls()
        started = clock.now()
        Executor(playbook, targets,
                 clients=lambda _account, region, service: sandbox.client(
                     service, region, config=_CLIENT_CONFIG),
                 clock=clock, bus=EventBus(), journal=Journal.memory(), run_id="forecast",
                 params=_rescue_profile(sandbox, playbook, _params(model, playbook, fleet)),
                 accepted=frozenset(model.accepted),
                 concurrency=model.concurrency,
                 rate_limits={k: Bucket(*v) for k, v in model.rate_limits.items()},
                 registry=HostRegistry(Path(folder), "forecast")).run()
        seconds = clock.now() - started
        calls = Counter(f"{c.service}:{c.operation}" for c in sandbox.api_calls
                        if c.mutating and not c.throttled)
    return Forecast(seconds, dict(sorted(calls.items())), model.targets)


def _spec(model: FleetModel) -> FleetSpec:
    regions = tuple(dict.fromkeys([i.region for i in model.instances]
                                  + [w.region for w in model.workspaces])) or ("us-east-1",)
    azs = max([i.az + 1 for i in model.instances], default=2)
    return FleetSpec(plain=0, azs=max(2, azs), regions=regions,
                     placements=tuple((i.kind, i.region, i.az) for i in model.instances),
                     workspaces=len(model.workspaces),
                     workspace_mix=tuple(w.condition for w in model.workspaces) or ("reboot",))


def _targets(sandbox: Sandbox, clock: VirtualClock, model: FleetModel,
             fleet: Fleet) -> list[Target]:
    """The sandbox's targets in the model's order (the run's: it decides the canary
    batches and who queues first), each with its model's account, state and health."""
    built: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for target in fleet.targets:
        built[(target.kind, target.region, target.availability_zone)].append(target)
    targets: list[Target] = []
    stopped: dict[str, list[str]] = defaultdict(list)
    for like in model.instances:
        zones = list(fleet.regions[like.region].subnets)
        made = built[(like.kind, like.region, zones[like.az % len(zones)])].pop(0)
        targets.append(Target("ec2-instance", made.instance_id, made.region, like.account))
        if like.healthy:
            _heal(sandbox, made.instance_id, made.root_volume_id)
        if like.state == "stopped":
            stopped[made.region].append(made.instance_id)
    for region, ids in stopped.items():
        sandbox.client("ec2", region).stop_instances(InstanceIds=ids)
    if stopped:
        clock.advance(_SETTLE)
    targets += [Target("workspace", w.workspace_id, w.region, like.account)
                for w, like in zip(fleet.workspaces, model.workspaces, strict=True)]
    return targets


def _heal(sandbox: Sandbox, instance_id: str, volume_id: str) -> None:
    world = sandbox.world
    with world.lock:
        world.bad_volumes.discard(volume_id)
        world.facts(instance_id).status = "ok"


def _playbook(model: FleetModel) -> Playbook:
    if model.playbook_text:
        folder = str(Path(model.playbook).parent)
        result = load_text(model.playbook_text, model.playbook, folder)
    else:
        result = load_file(model.playbook)
    if result.playbook is None:
        raise ValueError(f"{model.playbook}: the playbook no longer loads")
    return result.playbook


def _params(model: FleetModel, playbook: Playbook, fleet: Fleet) -> dict[str, Any]:
    """The run's parameters (defaults for any not given); an image id of the operator's
    account becomes the sandbox's rescue image (the sandbox has no such AMI)."""
    defaults, _ = bind_params(playbook, {})
    region = next(iter(fleet.regions.values()))
    return {name: region.rescue_windows_ami
            if isinstance(value, str) and value.startswith("ami-") else value
            for name, value in {**defaults, **model.params}.items()}


def _rescue_profile(sandbox: Sandbox, playbook: Playbook,
                    params: dict[str, Any]) -> dict[str, Any]:
    """The rescue instance profile the run names, made in the rehearsal's account (by its
    name: an ARN names the operator's account), so rescue instances launch and register
    with SSM as in the run; ``params`` then name it."""
    profile = PreflightPolicy.for_playbook(playbook, params, frozenset()).rescue_instance_profile
    if not profile:
        return params
    name = sandbox.ssm_instance_profile(profile.rsplit("/", 1)[-1])
    return {key: name if value == profile else value for key, value in params.items()}
