"""ec2.inspect: a Step Functions iteration learns the facts the local engine learns.

Inspection only reads, so both engines read the same fleet: every kind of EC2 target,
inspected by the local engine and by one exported iteration each, gets the same facts
(but the rescue image's and the rescue instances' SSM reach, which Step Functions does
not read: LOCAL_ONLY_FACTS).
"""

from __future__ import annotations

from typing import Any

import pytest
from sfn_support import NO_RETRIES, ec2_targets, from_text, run_one_target

from remediate.actions.contract import Target
from remediate.actions.ec2_inspect import LOCAL_ONLY_FACTS, ROOT_OF_TAG
from remediate.actions.requests import StepFailed
from remediate.clock import VirtualClock
from remediate.executor.driver import SyncRuntime, run_action
from remediate.export.moto_engine import MotoStepFunctions
from remediate.kinds import KINDS
from remediate.sandbox import FleetSpec, Sandbox

# The ec2.stop step never runs; it makes the inspection read stop protection (as the
# local engine does for a playbook that stops instances).
READ_ONLY = """
version: 1
name: inspect-only
parameters:
  stop: {type: boolean, default: false}
targets: {kind: ec2-instance, tags: {incident: crowdstrike-2024-07-19}}
steps:
  - id: look
    action: control.pause
    with: {duration: 1s}
  - id: stop
    action: ec2.stop
    when: {value: params.stop, equals: true}
"""
EVERY_KIND = FleetSpec(plain=1, instance_store=1, spot_one_time=1, spot_persistent=1,
                       stop_protected=1, encrypted_bad_key=1, marketplace=1, hibernation=1,
                       with_eip=1, azs=2)


def _local(sb: Sandbox, target: Target) -> dict[str, Any]:
    runtime = SyncRuntime(lambda service, region: sb.client(service, region, NO_RETRIES),
                          sb.clock)
    return dict(run_action("ec2.inspect", target, {"stop_protection": True}, runtime))


def _on_stepfunctions(sb: Sandbox, engine: MotoStepFunctions, target: Target,
                      run_id: str) -> dict[str, Any]:
    playbook, params = from_text(READ_ONLY)
    outcome = run_one_target(sb, engine, playbook, params, target, run_id=run_id)
    assert outcome.status == "SUCCEEDED", (outcome.error, outcome.cause)
    facts: dict[str, Any] = outcome.output["target"]
    return facts


def test_every_kind_of_target_gets_the_same_facts_on_both_engines(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions) -> None:
    fleet = sfn_sandbox.build_fleet(EVERY_KIND)
    shared = set(KINDS["ec2-instance"].facts) - set(LOCAL_ONLY_FACTS)

    for index, target in enumerate(ec2_targets(fleet.targets)):
        local = _local(sfn_sandbox, target)
        remote = _on_stepfunctions(sfn_sandbox, sfn_engine, target, f"inspect-{index}")

        assert set(remote) == set(local) == set(KINDS["ec2-instance"].facts)
        assert {k: remote[k] for k in shared} == {k: local[k] for k in shared}, target
        assert [remote[k] for k in LOCAL_ONLY_FACTS] == [None] * len(LOCAL_ONLY_FACTS)
    # The risky facts were there to be learned, so the comparison says something.
    kinds = {t.instance_id: t.kind for t in fleet.targets}
    seen = {kinds[target.id]: _local(sfn_sandbox, target)
            for target in ec2_targets(fleet.targets)}
    assert seen["instance_store"]["instance_store"] is True
    assert seen["stop_protected"]["stop_protection"] is True
    assert seen["spot_persistent"]["spot_request_type"] == "persistent"
    assert seen["encrypted_bad_key"]["kms_key_usable"] is False
    assert seen["hibernation"]["kms_key_usable"] is True
    assert seen["marketplace"]["product_codes"] != []
    assert any(facts["has_elastic_ip"] for facts in seen.values())
    assert seen["plain"]["tags"]["incident"] == "crowdstrike-2024-07-19"


def _root_detached(sb: Sandbox, clock: VirtualClock, tags: dict[str, str],
                   also_tagged: int = 0) -> tuple[Target, Any, Any]:
    """A stopped instance whose root volume was detached after being tagged with ``tags``
    (and ``also_tagged`` other volumes tagged as its root): the target, its record as
    built, an EC2 client."""
    fleet = sb.build_fleet(FleetSpec(plain=1, azs=1))
    (target,), built = ec2_targets(fleet.targets), fleet.targets[0]
    ec2 = sb.client("ec2", target.region, NO_RETRIES)
    ec2.stop_instances(InstanceIds=[target.id])
    clock.advance(sb.durations.instance_stop + 1)
    volumes = [built.root_volume_id, *(
        ec2.create_volume(AvailabilityZone=built.availability_zone, Size=8)["VolumeId"]
        for _ in range(also_tagged))]
    ec2.create_tags(Resources=volumes, Tags=[{"Key": ROOT_OF_TAG, "Value": target.id}, *(
        {"Key": key, "Value": value} for key, value in tags.items())])
    ec2.detach_volume(VolumeId=built.root_volume_id)
    clock.advance(600)
    return target, built, ec2


def test_a_detached_root_is_found_by_its_tags_on_both_engines(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions, sfn_clock: VirtualClock) -> None:
    target, built, _ = _root_detached(sfn_sandbox, sfn_clock, {
        "remediate:root-device": "/dev/sda1", "remediate:delete-on-termination": "true"})

    local = _local(sfn_sandbox, target)
    remote = _on_stepfunctions(sfn_sandbox, sfn_engine, target, "detached-1")

    keys = ("root_volume_id", "root_device_name", "root_delete_on_termination", "state")
    assert {k: remote[k] for k in keys} == {k: local[k] for k in keys} == {
        "root_volume_id": built.root_volume_id, "root_device_name": "/dev/sda1",
        "root_delete_on_termination": True, "state": "stopped"}


def test_two_tagged_roots_fail_the_inspection_on_both_engines(
        sfn_sandbox: Sandbox, sfn_engine: MotoStepFunctions, sfn_clock: VirtualClock) -> None:
    target, _, ec2 = _root_detached(sfn_sandbox, sfn_clock, {}, also_tagged=1)
    playbook, params = from_text(READ_ONLY)

    with pytest.raises(StepFailed) as local:
        _local(sfn_sandbox, target)
    outcome = run_one_target(sfn_sandbox, sfn_engine, playbook, params, target)

    listed = ec2.describe_volumes(Filters=[{"Name": f"tag:{ROOT_OF_TAG}",
                                            "Values": [target.id]}])["Volumes"]
    message = (f"{target.id} has no root volume attached and 2 volumes are tagged "
               f"{ROOT_OF_TAG}={target.id} ({', '.join(v['VolumeId'] for v in listed)}); "
               "say which one with volume_id")
    assert str(local.value) == message
    assert (outcome.status, outcome.error, outcome.cause) == (
        "FAILED", "remediate.Refused", f"inspection failed: {message}")
