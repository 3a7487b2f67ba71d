"""The sandbox's consoles: serial log and boot screen follow each guest, and a repair."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from remediate.clock import VirtualClock
from remediate.sandbox import FleetSpec, Sandbox
from remediate.triage import screen, serial

from .conftest import NO_RETRIES

MIXED = FleetSpec(plain=1, reboot_fixable=1, reboots_to_fix=1, healthy=1, boot_loop_other=1,
                  black_screen=1, workspaces=2, workspace_mix=("reboot", "stopped"), azs=1)


def _console(ec2: Any, instance_id: str) -> tuple[str, str]:
    """(serial log, screen verdict) of an instance."""
    output = ec2.get_console_output(InstanceId=instance_id).get("Output", "")
    shot = ec2.get_console_screenshot(InstanceId=instance_id)["ImageData"]
    return output, screen.read(shot).verdict


def test_each_guest_writes_its_serial_log_and_shows_its_screen(sandbox: Sandbox) -> None:
    fleet = sandbox.build_fleet(MIXED)
    ec2 = sandbox.client("ec2", config=NO_RETRIES)
    seen = {t.kind: _console(ec2, t.instance_id) for t in fleet.targets}

    assert {kind: (serial.read(log).verdict, shown) for kind, (log, shown) in seen.items()} == {
        "plain": ("incident", "stop-code"),
        "reboot_fixable": ("incident", "stop-code"),
        "healthy": ("ready", "login"),
        "boot_loop_other": ("bug-check", "stop-code"),
        "black_screen": ("silent", "black"),
    }
    assert "*** STOP: 0x00000050 (PAGE_FAULT_IN_NONPAGED_AREA)" in seen["plain"][0]
    assert "What failed: csagent.sys" in seen["plain"][0]
    assert "EC2Launch: Message: Windows is Ready to use" in seen["healthy"][0]
    assert "*** STOP: 0x0000007B (INACCESSIBLE_BOOT_DEVICE)" in seen["boot_loop_other"][0]
    assert seen["black_screen"][0] == ""  # AWS leaves Output out: nothing written


def test_the_screenshot_is_a_base64_jpg(sandbox: Sandbox) -> None:
    """GetConsoleScreenshot: "a JPG-format screenshot", "Base64-encoded" (API reference)."""
    fleet = sandbox.build_fleet(FleetSpec(plain=1, azs=1))
    data = sandbox.client("ec2").get_console_screenshot(
        InstanceId=fleet.targets[0].instance_id)["ImageData"]
    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as image:
        assert image.format == "JPEG"


def test_a_repaired_guest_shows_a_sign_in_screen_once_it_booted(sandbox: Sandbox,
                                                                 clock: VirtualClock) -> None:
    fleet = sandbox.build_fleet(FleetSpec(reboot_fixable=1, reboots_to_fix=1, plain=0, azs=1))
    ec2 = sandbox.client("ec2", config=NO_RETRIES)
    instance_id = fleet.targets[0].instance_id
    ec2.reboot_instances(InstanceIds=[instance_id])

    log, shown = _console(ec2, instance_id)
    assert (serial.read(log).verdict, shown) == ("silent", "black")  # booting
    clock.advance(600)
    log, shown = _console(ec2, instance_id)
    assert (serial.read(log).verdict, shown) == ("ready", "login")


def test_no_screenshot_of_a_stopped_instance(sandbox: Sandbox, clock: VirtualClock) -> None:
    fleet = sandbox.build_fleet(FleetSpec(healthy=1, plain=0, azs=1))
    ec2 = sandbox.client("ec2", config=NO_RETRIES)
    instance_id = fleet.targets[0].instance_id
    ec2.stop_instances(InstanceIds=[instance_id])
    clock.advance(3600)

    with pytest.raises(ClientError) as caught:
        ec2.get_console_screenshot(InstanceId=instance_id)
    assert caught.value.response["Error"] == {
        "Code": "IncorrectInstanceState",
        "Message": f"The instance '{instance_id}' is not in the 'running' state."}


def test_workspaces_connection_status_follows_the_state(sandbox: Sandbox,
                                                       clock: VirtualClock) -> None:
    fleet = sandbox.build_fleet(MIXED)
    ws = sandbox.client("workspaces", config=NO_RETRIES)
    ids = [w.workspace_id for w in fleet.workspaces]
    found = ws.describe_workspaces_connection_status(WorkspaceIds=ids)[
        "WorkspacesConnectionStatus"]
    by_fix = {w.workspace_id: w.fixed_by for w in fleet.workspaces}
    # An AVAILABLE WorkSpace with no one signed in is DISCONNECTED; UNHEALTHY and STOPPED
    # ones cannot be checked: UNKNOWN.
    assert {by_fix[s["WorkspaceId"]]: s["ConnectionState"] for s in found} == {
        "reboot": "UNKNOWN", "stopped": "UNKNOWN"}
    ws.reboot_workspaces(RebootWorkspaceRequests=[{"WorkspaceId": ids[0]}])
    clock.advance(3600)
    found = ws.describe_workspaces_connection_status(WorkspaceIds=ids[:1])[
        "WorkspacesConnectionStatus"]
    assert [s["ConnectionState"] for s in found] == ["DISCONNECTED"]
    with pytest.raises(ClientError):
        ws.describe_workspaces_connection_status(WorkspaceIds=[f"ws-{n:09d}" for n in range(26)])
