"""rescue.attach_volume / repair / detach_volume and the RescuePool, against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from remediate.actions.contract import StepContext
from remediate.actions.requests import ActionRun, AwsError, Sleep, StepFailed
from remediate.actions.rescue import AttachVolume, DetachVolume, Repair, RescuePool
from remediate.actions.rescue_launch import RescueConfig, slot_of
from remediate.actions.rescue_pool import RescueInstance
from remediate.language.problems import Problem
from remediate.sandbox import Fleet, FleetSpec
from remediate.sandbox.fleet import Target as FleetTarget
from sandbox_actions import (
    CRASHED,
    REGION,
    Env,
    Interleaver,
    build,
    detach_root,
    ec2_target,
    instance_state,
    volume_state,
)

pytest_plugins = ["conftest_sandbox_actions"]

CHANNEL = r"Windows\System32\drivers\CrowdStrike\C-00000291-00000000-00000032.sys"


def broken(env: Env, count: int = 1, azs: int = 1) -> tuple[Fleet, list[FleetTarget]]:
    """``count`` stopped targets whose root volume is detached and still holds the file."""
    fleet = build(env, FleetSpec(plain=count, azs=azs))
    for target in fleet.targets:
        detach_root(env, target.instance_id, target.root_volume_id)
    return fleet, list(fleet.targets)


def facts(target: FleetTarget, **extra: Any) -> dict[str, Any]:
    return {"root_volume_id": target.root_volume_id, "image_id": target.image_id,
            "availability_zone": target.availability_zone, **extra}


def ctx_for(env: Env, target: FleetTarget, **kwargs: Any) -> StepContext:
    extra = kwargs.pop("facts", {})
    return env.context(ec2_target(target.instance_id), facts(target, **extra), **kwargs)


def attach_params(fleet: Fleet, **extra: Any) -> dict[str, Any]:
    return {"rescue_image_id": fleet.regions[REGION].rescue_windows_ami, **extra}


def describe_instance(env: Env, instance_id: str) -> Mapping[str, Any]:
    found = env.client("ec2").describe_instances(InstanceIds=[instance_id])
    instance: Mapping[str, Any] = found["Reservations"][0]["Instances"][0]
    return instance


def attachment(env: Env, volume_id: str) -> tuple[str, str] | None:
    volume = env.client("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    if not volume["Attachments"]:
        return None
    return volume["Attachments"][0]["InstanceId"], volume["Attachments"][0]["Device"]


def rescue_ids(env: Env, run_id: str = "sync-run") -> list[str]:
    found = env.client("ec2").describe_instances(Filters=[
        {"Name": "tag:remediate:run-id", "Values": [run_id]},
        {"Name": "tag:remediate:role", "Values": ["rescue"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]},
    ])
    return sorted(i["InstanceId"] for r in found["Reservations"] for i in r["Instances"])


def swap(env: Env, fleet: Fleet, target: FleetTarget, **attach: Any) -> ActionRun:
    """The three rescue steps for one target, as one generator."""
    ctx = ctx_for(env, target)
    outputs = yield from env.start("rescue.attach_volume", ctx, attach_params(fleet, **attach))
    repaired = yield from env.start("rescue.repair", ctx, {})
    yield from env.start("rescue.detach_volume", ctx, {})
    return {**outputs, "stdout": repaired["stdout"]}


# ---- one target, start to finish -----------------------------------------------------


def test_attach_repair_detach_removes_the_channel_file(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    volume_id = target.root_volume_id
    ctx = ctx_for(action_env, target)

    attached = action_env.run("rescue.attach_volume", ctx, attach_params(fleet))

    rescue_id = attached["rescue_instance_id"]
    assert attached == {"rescue_instance_id": rescue_id, "device": "xvdf",
                        "volume_id": volume_id, "availability_zone": target.availability_zone}
    assert attachment(action_env, volume_id) == (rescue_id, "xvdf")
    rescue = describe_instance(action_env, rescue_id)
    assert rescue["ImageId"] == fleet.regions[REGION].rescue_windows_ami
    assert rescue["Placement"]["AvailabilityZone"] == target.availability_zone
    assert {t["Key"]: t["Value"] for t in rescue["Tags"]} == {
        "remediate:run-id": "sync-run", "remediate:role": "rescue",
        "Name": f"remediate-rescue-{target.availability_zone}"}
    root = next(m for m in rescue["BlockDeviceMappings"]
                if m["DeviceName"] == rescue["RootDeviceName"])
    assert root["Ebs"]["DeleteOnTermination"] is True
    assert action_env.sandbox.channel_file_present(volume_id)

    repaired = action_env.run("rescue.repair", ctx, {"rescue_instance_id": rescue_id})

    assert repaired["stdout"] == f"{volume_id} (xvdf): deleted {CHANNEL}"
    assert (repaired["exit_code"], repaired["rescue_instance_id"]) == (0, rescue_id)
    assert not action_env.sandbox.channel_file_present(volume_id)
    sent = [c for c in action_env.runtime.calls if c.operation == "SendCommand"]
    assert sent[0].params["DocumentName"] == "AWS-RunPowerShellScript"
    assert sent[0].params["Parameters"]["commands"][0] == f"$VolumeId = '{volume_id}'"

    detached = action_env.run("rescue.detach_volume", ctx, {})

    assert detached == {"volume_id": volume_id, "detached_from": rescue_id}
    assert volume_state(action_env, volume_id) == "available"
    assert attachment(action_env, volume_id) is None


def test_a_linux_rescue_instance_runs_the_shell_script(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target)
    attached = action_env.run("rescue.attach_volume", ctx, attach_params(
        fleet, rescue_image_id=fleet.regions[REGION].rescue_linux_ami))
    assert attached["device"] == "/dev/xvdf"

    repaired = action_env.run("rescue.repair", ctx,
                              {"script": "scripts/crowdstrike-offline-repair.sh"})

    assert repaired["stdout"] == f"{target.root_volume_id} (/dev/xvdf): deleted {CHANNEL}"
    sent = [c for c in action_env.runtime.calls if c.operation == "SendCommand"][-1]
    assert sent.params["DocumentName"] == "AWS-RunShellScript"
    assert sent.params["Parameters"]["commands"][0] == f"VolumeId={target.root_volume_id}"
    assert not action_env.sandbox.channel_file_present(target.root_volume_id)


def test_the_pool_uses_the_given_subnet_and_profile(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    iam = action_env.client("iam")
    iam.create_instance_profile(InstanceProfileName="rescue-ssm")
    subnet = fleet.regions[REGION].subnets[target.availability_zone]
    other = next(s for az, s in fleet.regions[REGION].subnets.items()
                 if az != target.availability_zone)
    attached = action_env.run("rescue.attach_volume", ctx_for(action_env, target), attach_params(
        fleet, subnet_ids=[other, subnet], instance_profile="rescue-ssm"))
    rescue = describe_instance(action_env, attached["rescue_instance_id"])
    assert rescue["SubnetId"] == subnet
    run = next(c for c in action_env.runtime.calls if c.operation == "RunInstances")
    assert run.params["IamInstanceProfile"] == {"Name": "rescue-ssm"}


def test_subnets_outside_the_az_are_refused(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    other = next(s for az, s in fleet.regions[REGION].subnets.items()
                 if az != target.availability_zone)
    with pytest.raises(StepFailed) as failed:
        action_env.run("rescue.attach_volume", ctx_for(action_env, target),
                       attach_params(fleet, subnet_ids=[other]))
    assert str(failed.value) == (
        f"rescue instance (not launched) in {target.availability_zone} is not usable: none of "
        f"subnet_ids ({other}) is in {target.availability_zone}: add a subnet in "
        f"{target.availability_zone}")
    assert action_env.runtime.count("RunInstances") == 0


# ---- guards and error texts ------------------------------------------------------------


def test_the_targets_own_image_is_refused_unless_accepted(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    params = attach_params(fleet, rescue_image_id=target.image_id)
    with pytest.raises(StepFailed) as failed:
        action_env.run("rescue.attach_volume", ctx_for(action_env, target), params)
    assert str(failed.value) == (
        f"rescue_image_id {target.image_id} is the AMI {target.instance_id} was launched from: "
        "its disk would collide with the rescue instance's (disk signature) and onlining it can "
        "leave it unbootable; use a different Windows version, or --accept same-ami-rescue")
    assert action_env.runtime.calls == []

    accepted = ctx_for(action_env, target, accepted=frozenset({"same-ami-rescue"}))
    attached = action_env.run("rescue.attach_volume", accepted, params)
    assert describe_instance(action_env, attached["rescue_instance_id"])["ImageId"] == (
        target.image_id)


def test_plan_describes_the_attach_and_warns_of_the_same_image(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target)
    plan = AttachVolume().plan(ctx, {**attach_params(fleet), "instance_type": "t3.medium"})
    assert [c.api for c in plan.calls] == ["ec2:RunInstances", "ec2:AttachVolume"]
    assert plan.note == (
        f"attach {target.root_volume_id} to a rescue instance in {target.availability_zone} "
        f"(launching one from {fleet.regions[REGION].rescue_windows_ami} as t3.medium if none "
        "has a free slot)")
    same = AttachVolume().plan(ctx, {"rescue_image_id": target.image_id,
                                     "instance_type": "t3.medium"})
    assert "; would fail: rescue_image_id" in same.note
    assert Repair().plan(ctx, {"script": "x.ps1"}).note == (
        f"run x.ps1 on the rescue instance holding {target.root_volume_id}")
    assert DetachVolume().plan(ctx, {}).calls[0].api == "ec2:DetachVolume"


LATEST = "resolve:ssm:/aws/service/ami-windows-latest/"
WINDOWS_2022 = f"{LATEST}Windows_Server-2022-English-Full-Base"
WINDOWS_2019 = f"{LATEST}Windows_Server-2019-English-Full-Base"


def test_a_resolve_ssm_image_is_resolved_once_and_launches_the_regions_ami(
        action_env: Env) -> None:
    fleet, targets = broken(action_env, count=3)

    results = Interleaver(action_env.runtime).run(
        {t.instance_id: swap(action_env, fleet, t, rescue_image_id=WINDOWS_2022)
         for t in targets})

    rescues = {r["rescue_instance_id"] for r in results.values()}
    assert len(rescues) == 1
    assert describe_instance(action_env, rescues.pop())["ImageId"] == (
        fleet.regions[REGION].rescue_windows_ami)
    assert action_env.runtime.count("GetParameter") == 1
    assert not any(action_env.sandbox.channel_file_present(t.root_volume_id) for t in targets)


@pytest.mark.parametrize(("image", "error"), [
    (WINDOWS_2019,  # the targets' own image: the same-image guard judges what it resolved to
     "rescue_image_id {image_id} ({image}) is the AMI {instance_id} was launched from: its "
     "disk would collide with the rescue instance's (disk signature) and onlining it can "
     "leave it unbootable; use a different Windows version, or --accept same-ami-rescue"),
    ("resolve:ssm:/no/such/parameter",
     "rescue image {image} does not resolve in us-east-1 (SSM parameter /no/such/parameter "
     "does not exist)"),
])
def test_a_parameter_naming_the_targets_image_or_none_fails_the_attach_before_any_launch(
        action_env: Env, image: str, error: str) -> None:
    fleet, [target] = broken(action_env)

    with pytest.raises(StepFailed) as failed:
        action_env.run("rescue.attach_volume", ctx_for(action_env, target),
                       attach_params(fleet, rescue_image_id=image))

    assert str(failed.value) == error.format(image=image, image_id=target.image_id,
                                             instance_id=target.instance_id)
    assert [c.operation for c in action_env.runtime.calls] == ["GetParameter"]


def test_plan_shows_the_image_a_parameter_resolved_to_and_probes_with_it(
        action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target)
    params = {"rescue_image_id": WINDOWS_2022, "instance_type": "t3.medium"}
    unresolved = AttachVolume().plan(ctx, params)
    assert unresolved.calls[0].probe is not None
    assert unresolved.calls[0].probe["ImageId"] == WINDOWS_2022  # AWS resolves it itself
    assert action_env.runtime.calls == []  # a plan asks AWS nothing

    action_env.run("ec2.inspect", ctx, {"rescue_image_id": WINDOWS_2022})
    plan = AttachVolume().plan(ctx, params)

    rescue = fleet.regions[REGION].rescue_windows_ami
    assert plan.note == (
        f"attach {target.root_volume_id} to a rescue instance in {target.availability_zone} "
        f"(launching one from {rescue} ({WINDOWS_2022}) as t3.medium if none has a free slot)")
    assert plan.calls[0].probe is not None and plan.calls[0].probe["ImageId"] == rescue
    same = AttachVolume().plan(ctx, {**params, "rescue_image_id": WINDOWS_2019})
    assert "would fail" not in same.note  # not resolved yet: nothing to judge in a plan
    action_env.run("ec2.inspect", ctx, {"rescue_image_id": WINDOWS_2019})
    assert "; would fail: rescue_image_id " in AttachVolume().plan(
        ctx, {**params, "rescue_image_id": WINDOWS_2019}).note


def test_a_volume_on_another_instance_is_refused(action_env: Env) -> None:
    fleet = build(action_env, FleetSpec(plain=1, azs=1))
    [target] = fleet.targets
    with pytest.raises(StepFailed) as failed:
        action_env.run("rescue.attach_volume", ctx_for(action_env, target), attach_params(fleet))
    assert str(failed.value) == (
        f"volume {target.root_volume_id} is attached to {target.instance_id} at /dev/sda1 "
        "(attached), not to a rescue instance of this run: detach it from there first")
    assert action_env.runtime.count("RunInstances") == 0


def test_a_missing_volume_fails_clearly(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target, facts={"root_volume_id": "vol-0000000000000dead"})
    with pytest.raises(StepFailed, match=r"^volume vol-0000000000000dead does not exist$"):
        action_env.run("rescue.attach_volume", ctx, attach_params(fleet))


def test_repair_needs_the_volume_on_a_rescue_instance(action_env: Env) -> None:
    _, [target] = broken(action_env)
    with pytest.raises(StepFailed) as failed:
        action_env.run("rescue.repair", ctx_for(action_env, target), {})
    assert str(failed.value) == (
        f"volume {target.root_volume_id} is not on a rescue instance of this run (it is "
        "available): run rescue.attach_volume first")


def test_repair_refuses_a_script_for_the_wrong_platform(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target)
    rescue = action_env.run("rescue.attach_volume", ctx, attach_params(fleet))
    with pytest.raises(StepFailed) as failed:
        action_env.run("rescue.repair", ctx, {"script": "scripts/crowdstrike-offline-repair.sh"})
    assert str(failed.value) == (
        "scripts/crowdstrike-offline-repair.sh is a sh script but rescue instance "
        f"{rescue['rescue_instance_id']} runs Windows")
    with pytest.raises(StepFailed) as mismatch:
        action_env.run("rescue.repair", ctx, {"rescue_instance_id": "i-0123456789abcdef0"})
    assert str(mismatch.value) == (
        f"volume {target.root_volume_id} is on rescue instance {rescue['rescue_instance_id']}, "
        "not i-0123456789abcdef0")
    assert action_env.runtime.count("SendCommand") == 0


def test_a_failing_repair_reports_the_scripts_error(action_env: Env, tmp_path: Path) -> None:
    fleet, [target] = broken(action_env)
    (tmp_path / "bad.ps1").write_text("# names a volume that is not attached\n"
                                      "Remove-Item C-00000291*.sys # vol-0000000000000beef\n")
    ctx = ctx_for(action_env, target, base_dir=str(tmp_path))
    rescue = action_env.run("rescue.attach_volume", ctx, attach_params(fleet))["rescue_instance_id"]
    with pytest.raises(StepFailed) as failed:
        action_env.run("rescue.repair", ctx, {"script": "bad.ps1"})
    command_id = next(c for c in action_env.runtime.calls if c.operation == "SendCommand")
    assert command_id is not None
    message = str(failed.value)
    assert message.startswith(f"offline repair of {target.root_volume_id} failed: SSM command ")
    assert message.endswith(
        f" on {rescue} ended Failed with exit code 1: Disk for volume vol-0000000000000beef not "
        f"found: the volume is not attached to {rescue} as a data disk.")


def test_repair_validates_its_script(tmp_path: Path) -> None:
    assert Repair().validate({"script": "nope.ps1"}, str(tmp_path)) == [
        Problem(("script",), f"script file nope.ps1 not found (looked for "
                             f"{tmp_path / 'nope.ps1'})")]
    (tmp_path / "fix.txt").write_text("C-00000291\n")
    assert Repair().validate({"script": "fix.txt"}, str(tmp_path)) == [
        Problem(("shell",), "cannot tell the shell of fix.txt from its extension: set shell "
                            "to powershell or sh")]
    (tmp_path / "t.ps1").write_text("Remove-Item '${{ target.id }}'\n")
    assert Repair().validate({"script": "t.ps1"}, str(tmp_path)) == [
        Problem(("script",), "templates are not allowed in script t.ps1 (found "
                             "'${{ target.id }}'): pass the value through parameters, which "
                             "quotes it, and use the variable in the script")]
    playbooks = Path(__file__).resolve().parents[2] / "playbooks"
    assert Repair().validate({}, str(playbooks)) == []


# ---- idempotence and resume -------------------------------------------------------------


def test_every_step_is_idempotent(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target)
    first = action_env.run("rescue.attach_volume", ctx, attach_params(fleet))
    again = action_env.run("rescue.attach_volume", ctx, attach_params(fleet))
    assert again == first
    assert (action_env.runtime.count("RunInstances"), action_env.runtime.count("AttachVolume")) == (
        1, 1)

    action_env.run("rescue.detach_volume", ctx, {})
    assert action_env.run("rescue.detach_volume", ctx, {}) == {
        "volume_id": target.root_volume_id, "detached_from": ""}
    assert action_env.runtime.count("DetachVolume") == 1


def test_a_new_process_finds_the_rescue_instance_by_its_tags(action_env: Env) -> None:
    fleet, [first, second] = broken(action_env, count=2)
    attached = action_env.run("rescue.attach_volume", ctx_for(action_env, first),
                              attach_params(fleet))

    resumed = action_env.new_runtime()
    again = action_env.run("rescue.attach_volume", ctx_for(action_env, first, runtime=resumed),
                           attach_params(fleet))
    other = action_env.run("rescue.attach_volume", ctx_for(action_env, second, runtime=resumed),
                           attach_params(fleet))

    assert again == attached
    assert other["rescue_instance_id"] == attached["rescue_instance_id"]
    assert other["device"] == "xvdg"  # xvdf is taken by the first volume
    assert (resumed.count("RunInstances"), resumed.count("AttachVolume")) == (0, 1)


def test_a_crash_during_the_launch_is_picked_up(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    crashed = Interleaver(action_env.runtime).run(
        {"t": action_env.start("rescue.attach_volume", ctx_for(action_env, target),
                               attach_params(fleet))},
        crash_after={"t": "RunInstances"})
    assert crashed == {"t": CRASHED}
    [launched] = rescue_ids(action_env)

    resumed = action_env.new_runtime()
    attached = action_env.run("rescue.attach_volume", ctx_for(action_env, target, runtime=resumed),
                              attach_params(fleet))
    assert attached["rescue_instance_id"] == launched
    assert resumed.count("RunInstances") == 0


def test_a_repair_still_running_is_waited_for_not_sent_again(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target)
    action_env.run("rescue.attach_volume", ctx, attach_params(fleet))
    crashed = Interleaver(action_env.runtime).run(
        {"t": action_env.start("rescue.repair", ctx, {})}, crash_after={"t": "SendCommand"})
    assert crashed == {"t": CRASHED}

    resumed = action_env.new_runtime()
    repaired = action_env.run("rescue.repair", ctx_for(action_env, target, runtime=resumed), {})

    assert resumed.count("SendCommand") == 0
    assert repaired["stdout"] == f"{target.root_volume_id} (xvdf): deleted {CHANNEL}"


# ---- several targets at once: the pool ---------------------------------------------------


def test_targets_share_one_rescue_instance_while_it_launches(action_env: Env) -> None:
    fleet, targets = broken(action_env, count=3)
    scheduler = Interleaver(action_env.runtime)
    results = scheduler.run({t.instance_id: swap(action_env, fleet, t) for t in targets})

    assert action_env.runtime.count("RunInstances") == 1
    assert {r["rescue_instance_id"] for r in results.values()} == set(rescue_ids(action_env))
    assert sorted(r["device"] for r in results.values()) == ["xvdf", "xvdg", "xvdh"]
    zone = f"/{targets[0].availability_zone}#"
    # The two that did not launch waited for the instance the first one launched.
    assert len({name for name, key in scheduler.parked if zone in key}) == 2
    for target in targets:
        assert not action_env.sandbox.channel_file_present(target.root_volume_id)
        assert volume_state(action_env, target.root_volume_id) == "available"


def test_a_full_pool_parks_targets_until_a_slot_frees(action_env: Env) -> None:
    fleet, targets = broken(action_env, count=3)
    scheduler = Interleaver(action_env.runtime)
    results = scheduler.run({t.instance_id: swap(action_env, fleet, t, max_per_az=2,
                                                 volumes_per_instance=1) for t in targets})

    assert action_env.runtime.count("RunInstances") == 2
    assert all(r["device"] == "xvdf" for r in results.values())
    assert len({r["rescue_instance_id"] for r in results.values()}) == 2
    moves = [(c.operation, str(c.params["InstanceId"])) for c in action_env.runtime.calls
             if c.operation in ("AttachVolume", "DetachVolume")]
    # Never two volumes on one rescue instance: each attach follows the last one's detach.
    holding: dict[str, int] = {}
    for operation, instance_id in moves:
        holding[instance_id] = holding.get(instance_id, 0) + (
            1 if operation == "AttachVolume" else -1)
        assert holding[instance_id] <= 1
    assert [operation for operation, _ in moves][:3] == [
        "AttachVolume", "AttachVolume", "DetachVolume"]
    zone = f"/{targets[0].availability_zone}#"
    assert len({name for name, key in scheduler.parked if zone in key}) == 1  # waited for a slot
    # It queued for a slot (looking again after each FULL_POLL), and the detach that freed
    # one woke it at once.
    queued = [key for _, key in scheduler.parked if ":slot#" in key]
    assert queued and queued[-1] in action_env.runtime.opened
    for target in targets:
        assert not action_env.sandbox.channel_file_present(target.root_volume_id)


def later(seconds: float, gen: ActionRun) -> ActionRun:
    """``gen``, started ``seconds`` later (a target that reaches the step after others)."""
    yield Sleep(seconds)
    return (yield from gen)


def test_a_freed_slot_goes_to_the_longest_waiting_target_not_a_newcomer(
        action_env: Env) -> None:
    fleet, targets = broken(action_env, count=4)
    one_slot = {"max_per_az": 1, "volumes_per_instance": 1}
    first, second, third, late = targets
    gens = {t.instance_id: swap(action_env, fleet, t, **one_slot)
            for t in (first, second, third)}
    # It arrives once the others queue for the one slot, before the first frees it.
    gens[late.instance_id] = later(150, swap(action_env, fleet, late, **one_slot))

    Interleaver(action_env.runtime).run(gens)

    attached = [str(c.params["VolumeId"]) for c in action_env.runtime.calls
                if c.operation == "AttachVolume"]
    assert attached == [t.root_volume_id for t in (first, second, third, late)]


def test_prepare_launches_ahead_as_many_instances_as_the_announced_targets_need(
        action_env: Env) -> None:
    fleet = build(action_env, FleetSpec(plain=7, azs=1))
    ahead = attach_params(fleet, max_per_az=3, volumes_per_instance=2)

    launched = [action_env.run("rescue.prepare", ctx_for(action_env, t), ahead)
                ["rescue_instance_id"] for t in fleet.targets]

    # Targets 1, 3 and 5 needed a new instance (2 slots each); the 7th finds the AZ at its cap.
    assert [bool(i) for i in launched] == [True, False, True, False, True, False, False]
    assert sorted(i for i in launched if i) == rescue_ids(action_env)
    # They launched without waiting: still pending, nobody waited for them to run.
    assert {instance_state(action_env, i) for i in launched if i} == {"pending"}


def test_the_attach_uses_the_instance_launched_ahead(action_env: Env) -> None:
    fleet, [target] = broken(action_env, count=1)
    ahead = action_env.run("rescue.prepare", ctx_for(action_env, target), attach_params(fleet))

    attached = action_env.run("rescue.attach_volume", ctx_for(action_env, target),
                              attach_params(fleet))

    assert attached["rescue_instance_id"] == ahead["rescue_instance_id"]
    assert action_env.runtime.count("RunInstances") == 1


def test_prepare_launches_nothing_from_the_targets_own_image(action_env: Env) -> None:
    fleet = build(action_env, FleetSpec(plain=1, azs=1))
    target = fleet.targets[0]
    own = {"rescue_image_id": target.image_id}

    assert action_env.run("rescue.prepare", ctx_for(action_env, target), own) == {
        "rescue_instance_id": ""}
    assert action_env.runtime.count("RunInstances") == 0


def test_each_az_gets_its_own_rescue_instance(action_env: Env) -> None:
    fleet, targets = broken(action_env, count=2, azs=2)
    results = Interleaver(action_env.runtime).run(
        {t.instance_id: swap(action_env, fleet, t) for t in targets})
    for target in targets:
        rescue = describe_instance(action_env, results[target.instance_id]["rescue_instance_id"])
        assert rescue["Placement"]["AvailabilityZone"] == target.availability_zone
    assert action_env.runtime.count("RunInstances") == 2


def test_a_failed_launch_fails_the_targets_waiting_for_it(action_env: Env) -> None:
    fleet, targets = broken(action_env, count=3)
    missing = "ami-0000000000000dead"
    results = Interleaver(action_env.runtime).run(
        {t.instance_id: swap(action_env, fleet, t, rescue_image_id=missing) for t in targets})
    expected = (f"rescue instance (not launched) in {targets[0].availability_zone} is not "
                f"usable: rescue image {missing} is not found in {REGION}")
    assert [str(r) for r in results.values()] == [expected] * 3
    assert all(isinstance(r, StepFailed) for r in results.values())
    assert action_env.runtime.count("RunInstances") == 0


def test_a_rescue_instance_that_never_comes_online_is_terminated(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    world = action_env.sandbox.world

    def boot_loops(response: Mapping[str, Any]) -> None:
        # A rescue root holding the bad channel file boot-loops like the targets.
        for instance in response["Instances"]:
            world.bad_volumes.update(m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"])

    action_env.runtime.after["RunInstances"] = boot_loops
    with pytest.raises(StepFailed) as failed:
        action_env.run("rescue.attach_volume", ctx_for(action_env, target),
                       attach_params(fleet, ready_timeout=600))
    assert "is not usable: timed out after 10m waiting for ssm-agent" in str(failed.value)
    launched = next(c for c in action_env.runtime.calls if c.operation == "TerminateInstances")
    [rescue] = launched.params["InstanceIds"]
    assert instance_state(action_env, rescue) in ("shutting-down", "terminated")
    assert volume_state(action_env, target.root_volume_id) == "available"


# ---- the end of the run --------------------------------------------------------------------


def test_finish_terminates_every_rescue_instance(action_env: Env) -> None:
    fleet, targets = broken(action_env, count=2, azs=2)
    Interleaver(action_env.runtime).run({t.instance_id: swap(action_env, fleet, t)
                                         for t in targets})
    launched = rescue_ids(action_env)
    assert len(launched) == 2

    pool = action_env.runtime.service(RescuePool)
    assert pool.places() == [("default", REGION)]
    outputs = action_env.runtime.drive(pool.finish(ctx_for(action_env, targets[0])), REGION)

    assert outputs == {"terminated": launched, "left_available": []}
    assert rescue_ids(action_env) == []
    for target in targets:
        assert volume_state(action_env, target.root_volume_id) == "available"


def test_finish_detaches_a_customer_volume_before_terminating(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target)
    rescue = action_env.run("rescue.attach_volume", ctx, attach_params(fleet))
    resumed = action_env.new_runtime()  # after a crash: the pool knows nothing

    outputs = resumed.drive(resumed.service(RescuePool).finish(ctx), REGION)

    rescue_id = rescue["rescue_instance_id"]
    assert outputs == {"terminated": [rescue_id],
                       "left_available": [f"{target.root_volume_id} (was on {rescue_id} at xvdf)"]}
    assert volume_state(action_env, target.root_volume_id) == "available"
    assert instance_state(action_env, rescue_id) in ("shutting-down", "terminated")
    detach = resumed.calls.index(next(c for c in resumed.calls if c.operation == "DetachVolume"))
    terminate = resumed.calls.index(
        next(c for c in resumed.calls if c.operation == "TerminateInstances"))
    assert detach < terminate


def test_finish_never_terminates_an_instance_holding_a_customer_volume(action_env: Env) -> None:
    fleet, [target] = broken(action_env)
    ctx = ctx_for(action_env, target)
    rescue_id = action_env.run("rescue.attach_volume", ctx, attach_params(fleet))[
        "rescue_instance_id"]
    action_env.runtime.failing["DetachVolume"] = AwsError(
        "UnauthorizedOperation", "You are not authorized to perform this operation.")

    with pytest.raises(StepFailed) as failed:
        action_env.runtime.drive(action_env.runtime.service(RescuePool).finish(ctx), REGION)

    assert str(failed.value) == (
        "kept rescue instance(s) that still hold a customer volume (detach it, reattach it to "
        f"its instance, then terminate the rescue instance): {rescue_id}: "
        f"{target.root_volume_id} at xvdf: UnauthorizedOperation: You are not authorized to "
        "perform this operation..")
    assert action_env.runtime.count("TerminateInstances") == 0
    assert instance_state(action_env, rescue_id) == "running"
    assert attachment(action_env, target.root_volume_id) == (rescue_id, "xvdf")


def test_finish_with_nothing_launched_does_nothing(action_env: Env) -> None:
    build(action_env, FleetSpec(plain=1, azs=1))
    pool = action_env.runtime.service(RescuePool)
    ctx = action_env.context(ec2_target("i-0123456789abcdef0"))
    assert action_env.runtime.drive(pool.finish(ctx), REGION) == {
        "terminated": [], "left_available": []}
    assert action_env.runtime.count("TerminateInstances") == 0


# ---- pool internals ------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "slot"), [
    ("xvdf", "xvdf"), ("/dev/xvdg", "xvdg"), ("/dev/sdh", "xvdh"), ("/dev/sda1", "xvda1")])
def test_device_names_map_to_slots(device: str, slot: str) -> None:
    assert slot_of(device) == slot


def test_slots_are_xvdf_to_xvdp_never_the_root() -> None:
    rescue = RescueInstance("us-east-1a", "ami-1", "i-1", volumes={"xvdf": "vol-a"})
    assert rescue.free_slot(11) == "xvdg"
    assert rescue.free_slot(1) is None
    rescue.volumes = {f"xvd{c}": f"vol-{c}" for c in "fghijklmnop"}
    assert rescue.free_slot(11) is None
    assert RescueInstance("az", "ami", platform="linux").device("xvdf") == "/dev/xvdf"


@pytest.fixture
def pool_ctx(action_env: Env) -> Iterator[StepContext]:
    yield action_env.context(ec2_target("i-0123456789abcdef0"))


def test_a_reservation_is_reused_by_the_same_volume(action_env: Env,
                                                    pool_ctx: StepContext) -> None:
    pool = RescuePool("run")
    zone = pool._zone(pool_ctx, "us-east-1a")
    ready = RescueInstance("us-east-1a", "ami-1", "i-1", ready=True)
    zone.instances.append(ready)
    config = RescueConfig(image_id="ami-1", volumes_per_instance=2)
    first = pool._reserve(zone, config, "vol-a", 0.0)
    assert first is not None and first.slot == "xvdf"
    assert pool._reserve(zone, config, "vol-a", 0.0) == first
    assert pool._reserve(zone, config, "vol-b", 0.0) is not None
    assert pool._reserve(zone, config, "vol-c", 0.0) is None  # two volumes per instance
    assert pool._reserve(zone, RescueConfig(image_id="ami-2"), "vol-d", 0.0) is None  # image
    pool.release(pool_ctx, "vol-a")
    assert ready.volumes == {"xvdg": "vol-b"}
    assert action_env.runtime.opened == ["rescue:run:default/us-east-1/us-east-1a#0"]


def test_slots_follow_what_aws_shows_attached() -> None:
    rescue = RescueInstance("az", "ami", "i-1", root_slot="xvda1", ready=True, volumes={
        "xvdf": "vol-gone", "xvdg": "vol-here", "xvdh": "vol-coming", "xvdi": "vol-stale",
        "xvdj": "?"})
    rescue.confirmed = {"vol-gone", "vol-here"}
    rescue.reserved_at = {"vol-coming": 1000.0, "vol-stale": 0.0}
    freed = rescue.reconcile({"xvda1": "vol-root", "xvdg": "vol-here", "xvdk": "vol-other",
                              "xvdh": "vol-coming"}, now=2000.0)
    assert freed
    # Taken off by someone else, reserved but never attached (stale), unknown: freed.
    assert rescue.volumes == {"xvdg": "vol-here", "xvdh": "vol-coming", "xvdk": "vol-other"}
    assert rescue.confirmed == {"vol-here", "vol-coming", "vol-other"}
    assert rescue.reserved_at == {}
    assert not rescue.reconcile({"xvdg": "vol-here", "xvdh": "vol-coming",
                                 "xvdk": "vol-other"}, now=2001.0)


def test_a_slot_freed_behind_the_pools_back_is_found(action_env: Env) -> None:
    fleet, [first, second] = broken(action_env, count=2)
    small = attach_params(fleet, max_per_az=1, volumes_per_instance=1)
    held = action_env.run("rescue.attach_volume", ctx_for(action_env, first), small)
    # A rollback (ec2.reattach_root) takes the volume off without telling the pool.
    action_env.client("ec2").detach_volume(VolumeId=first.root_volume_id)

    started = action_env.clock.now()
    attached = action_env.run("rescue.attach_volume", ctx_for(action_env, second), small)

    assert (attached["rescue_instance_id"], attached["device"]) == (
        held["rescue_instance_id"], "xvdf")
    assert action_env.runtime.count("RunInstances") == 1
    assert action_env.clock.now() - started >= 30  # it looked again after FULL_POLL


# ---- with the EC2 steps around them: the volume swap -----------------------------------------


def test_the_volume_swap_brings_the_target_back(action_env: Env) -> None:
    fleet = build(action_env, FleetSpec(plain=1, azs=1))
    target = ec2_target(fleet.targets[0].instance_id)
    facts = dict(action_env.run("ec2.inspect", action_env.context(target), {}))
    assert facts["status"] == "impaired"
    ctx = action_env.context(target, facts)
    for action, params in [
        ("ec2.stop", {}), ("ec2.detach_root", {}),
        ("rescue.attach_volume", attach_params(fleet)), ("rescue.repair", {}),
        ("rescue.detach_volume", {}), ("ec2.reattach_root", {}), ("ec2.start", {}),
    ]:
        action_env.run(action, ctx, params)
    action_env.clock.advance(action_env.sandbox.durations.instance_boot + 1)
    assert action_env.run("ec2.inspect", action_env.context(target), {})["status"] == "ok"
    pool = action_env.runtime.service(RescuePool)
    assert action_env.runtime.drive(pool.finish(ctx), REGION)["left_available"] == []
    assert rescue_ids(action_env) == []


def test_a_rollback_that_reattaches_the_root_frees_the_slot(action_env: Env) -> None:
    fleet = build(action_env, FleetSpec(plain=2, azs=1))
    small = attach_params(fleet, max_per_az=1, volumes_per_instance=1)
    contexts = []
    for made in fleet.targets:
        target = ec2_target(made.instance_id)
        facts = dict(action_env.run("ec2.inspect", action_env.context(target), {}))
        contexts.append(action_env.context(target, facts))
        action_env.run("ec2.stop", contexts[-1], {})
        action_env.run("ec2.detach_root", contexts[-1], {})
    first, second = contexts
    held = action_env.run("rescue.attach_volume", first, small)
    action_env.run("ec2.reattach_root", first, {})  # the first target's rollback

    attached = action_env.run("rescue.attach_volume", second, small)

    assert attached["rescue_instance_id"] == held["rescue_instance_id"]
    assert attachment(action_env, fleet.targets[0].root_volume_id) == (
        fleet.targets[0].instance_id, "/dev/sda1")
