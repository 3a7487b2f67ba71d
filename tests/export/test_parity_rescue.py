"""rescue.prepare, rescue.attach_volume, rescue.repair and rescue.detach_volume: the same
end on both engines.

Each runs as a short playbook locally (the run's rescue pool, finished at the end of
the run) and, exported, on moto's Step Functions (a rescue instance per target, the
iteration's cleanup at its end), on a fresh sandbox fleet of the same shape
(tests/export/parity_support.py). The end state of every target is read the same way:
the instance, where its root volume is, whether the channel file is still on it, and
how many rescue instances are left.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import yaml
from parity_support import both_engines, one_step
from sfn_support import NO_RETRIES, REGION, EndState, end_state, rescue_instances

from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, FleetSpec, Sandbox

LATEST = "resolve:ssm:/aws/service/ami-windows-latest/"
# A different Windows version than the sandbox's targets run (the rescue image).
RESCUE_IMAGE = f"{LATEST}Windows_Server-2022-English-Full-Base"
# The targets' own image.
TARGETS_IMAGE = f"{LATEST}Windows_Server-2019-English-Full-Base"
ATTACH = {"rescue_image_id": RESCUE_IMAGE}
STOPPED_DETACHED = EndState("stopped", False, True, False)


def place(sb: Sandbox, target: Any) -> str:
    """Where the target's root volume is."""
    ec2 = sb.client("ec2", REGION, NO_RETRIES)
    volume = ec2.describe_volumes(VolumeIds=[target.root_volume_id])["Volumes"][0]
    if not volume["Attachments"]:
        return volume["State"]
    holder = volume["Attachments"][0]["InstanceId"]
    if holder == target.instance_id:
        return "on its instance"
    return "on a rescue instance" if holder in rescue_instances(sb) else f"on {holder}"


def swap_state(sb: Sandbox, fleet: Fleet) -> tuple[Counter[tuple[EndState, str]], int, int]:
    """Each target's end state and where its root is; rescue instances left; how many
    times a volume was attached (so an attach that did nothing cannot pass)."""
    states = Counter((end_state(sb, t), place(sb, t)) for t in fleet.targets)
    return states, len(rescue_instances(sb)), sb.api_call_counts()[("ec2", "AttachVolume")]


def stopped(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
    ec2 = sb.client("ec2", REGION, NO_RETRIES)
    ec2.stop_instances(InstanceIds=fleet.instance_ids())
    clock.advance(sb.durations.instance_stop + 1)
    return {}


def swap(*specs: tuple[str, str, dict[str, Any]]) -> str:
    """A playbook that stops each target and detaches its root (inspection refuses a
    target with nothing at its root device, so these come first), then these (id,
    action, with) steps."""
    document = yaml.safe_load(one_step("control.pause"))
    document["steps"] = [{"id": step_id, "action": action, "with": params} for step_id, action,
                         params in (("stop", "ec2.stop", {}), ("detach", "ec2.detach_root", {}),
                                    *specs)]
    return yaml.safe_dump(document, sort_keys=False)


def test_attach_puts_each_root_on_a_rescue_instance_and_the_end_takes_it_off() -> None:
    found = both_engines(FleetSpec(plain=2, azs=2),
                         swap(("attach", "rescue.attach_volume", ATTACH)), swap_state)

    # Attached (two AttachVolume), then the run's end (the pool's finish, the iteration's
    # cleanup) took each volume off its rescue instance and terminated it.
    assert found.local == found.stepfunctions == (
        Counter({(STOPPED_DETACHED, "available"): 2}), 0, 2)
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 2}, "SUCCEEDED")


STOPPED = EndState("stopped", True, True, False)


def test_attach_refuses_a_root_still_on_its_instance() -> None:
    found = both_engines(FleetSpec(plain=1, azs=1), one_step("rescue.attach_volume", ATTACH),
                         swap_state, prepare=stopped)

    assert found.local == found.stepfunctions == (
        Counter({(STOPPED, "on its instance"): 1}), 0, 0)
    assert found.local_statuses == {"failed": 1}


def test_attach_refuses_the_targets_own_image() -> None:
    found = both_engines(FleetSpec(plain=1, azs=1),
                         one_step("rescue.attach_volume", {"rescue_image_id": TARGETS_IMAGE}),
                         swap_state, prepare=stopped)

    assert found.local == found.stepfunctions == (Counter({(STOPPED, "on its instance"): 1}), 0, 0)
    # Locally pre-flight refuses the target (the finding was not accepted); exported, the
    # program's own guard fails the step, before any call that changes something.
    assert found.local_statuses == {"refused": 1}


def test_attach_then_repair_deletes_the_channel_file() -> None:
    text = swap(("attach", "rescue.attach_volume", ATTACH),
                ("repair", "rescue.repair",
                 {"rescue_instance_id": "${{ steps.attach.outputs.rescue_instance_id }}"}))

    found = both_engines(FleetSpec(plain=2, azs=1), text, swap_state)

    repaired = EndState("stopped", False, False, False)
    assert found.local == found.stepfunctions == (Counter({(repaired, "available"): 2}), 0, 2)
    assert found.local_statuses == {"succeeded": 2}


def escrow_the_first_key(sb: Sandbox, fleet: Fleet, _clock: VirtualClock) -> dict[str, Any]:
    first = fleet.targets[0].root_volume_id
    sb.client("ssm", REGION, NO_RETRIES).put_parameter(
        Name=f"/bitlocker/{first}", Type="SecureString",
        Value=sb.world.bitlocker_volumes[first].password)
    return {}


def test_repair_unlocks_a_bitlocker_root_with_its_escrowed_key_on_both_engines() -> None:
    text = swap(("attach", "rescue.attach_volume", ATTACH),
                ("repair", "rescue.repair", {"bitlocker_keys": "ssm:/bitlocker/{volume_id}"}))

    found = both_engines(FleetSpec(plain=0, bitlocker=2, azs=1), text, swap_state,
                         prepare=escrow_the_first_key)

    # The escrowed one repaired; the other, its key nowhere, failed with the channel file.
    repaired = EndState("stopped", False, False, False)
    assert found.local == found.stepfunctions == (
        Counter({(repaired, "available"): 1, (STOPPED_DETACHED, "available"): 1}), 0, 2)
    assert found.local_statuses == {"succeeded": 1, "failed": 1}


def test_repair_refuses_a_script_for_another_platform() -> None:
    text = swap(("attach", "rescue.attach_volume", ATTACH),
                ("repair", "rescue.repair", {"script": "scripts/crowdstrike-offline-repair.sh"}))

    found = both_engines(FleetSpec(plain=1, azs=1), text, swap_state)

    assert found.local == found.stepfunctions == (
        Counter({(STOPPED_DETACHED, "available"): 1}), 0, 1)
    assert found.local_statuses == {"failed": 1}


def test_repair_without_the_volume_on_a_rescue_instance_fails() -> None:
    found = both_engines(FleetSpec(plain=1, azs=1), one_step("rescue.repair"), swap_state,
                         prepare=stopped)

    assert found.local == found.stepfunctions == (Counter({(STOPPED, "on its instance"): 1}), 0, 0)
    assert found.local_statuses == {"failed": 1}


def test_detach_takes_the_volume_off_and_leaves_no_rescue_instance() -> None:
    text = swap(("attach", "rescue.attach_volume", ATTACH), ("release", "rescue.detach_volume", {}))

    found = both_engines(FleetSpec(plain=2, azs=2), text, swap_state)

    assert found.local == found.stepfunctions == (
        Counter({(STOPPED_DETACHED, "available"): 2}), 0, 2)
    assert found.local_statuses == {"succeeded": 2}


def test_detach_of_a_volume_on_no_rescue_instance_does_nothing() -> None:
    found = both_engines(FleetSpec(plain=1, azs=1), one_step("rescue.detach_volume"),
                         swap_state)

    untouched = EndState("running", True, True, False)
    assert found.local == found.stepfunctions == (
        Counter({(untouched, "on its instance"): 1}), 0, 0)
    assert found.local_statuses == {"succeeded": 1}


def test_prepare_leaves_no_rescue_instance_behind() -> None:
    found = both_engines(FleetSpec(plain=2, azs=1), one_step("rescue.prepare", ATTACH),
                         swap_state)

    # Locally it launched one ahead, which the run's end terminated; on Step Functions
    # each target launches its own at the attach, so it did nothing.
    untouched = EndState("running", True, True, False)
    assert found.local == found.stepfunctions == (
        Counter({(untouched, "on its instance"): 2}), 0, 0)
    assert (found.local_statuses, found.sfn_status) == ({"succeeded": 2}, "SUCCEEDED")


def losing(*operations: str) -> Any:
    """A prepare step: the first call of each operation takes effect and answers 500."""

    def prepare(sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
        for operation in operations:
            sb.lose_replies(operation, times=1)
        return {}

    return prepare


def test_lost_replies_of_the_launch_and_the_attach_end_the_same() -> None:
    text = swap(("attach", "rescue.attach_volume", ATTACH), ("repair", "rescue.repair", {}),
                ("release", "rescue.detach_volume", {}))

    def observe(sb: Sandbox, fleet: Fleet) -> tuple[Any, int]:
        launched = sb.client("ec2", REGION, NO_RETRIES).describe_instances(Filters=[
            {"Name": "tag:remediate:role", "Values": ["rescue"]}])["Reservations"]
        return swap_state(sb, fleet), len(launched)

    found = both_engines(FleetSpec(plain=1, azs=1), text, observe,
                         prepare=losing("RunInstances", "AttachVolume"))

    # The lost launch is sent again with its ClientToken (one instance launched); the
    # attach is not sent again: the step starts over and finds the volume attached.
    repaired = EndState("stopped", False, False, False)
    assert found.local == found.stepfunctions == (
        (Counter({(repaired, "available"): 1}), 0, 1), 1)
    assert found.local_statuses == {"succeeded": 1}
