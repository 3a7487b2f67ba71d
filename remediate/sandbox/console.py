"""EC2's consoles: GetConsoleOutput (the serial log) and GetConsoleScreenshot (the screen).

moto answers GetConsoleOutput with a fixed Linux boot log and has no
GetConsoleScreenshot. Here both follow the guest (:func:`guest`), which derives from
what the sandbox already knows: a root volume holding the bad channel file
(:mod:`remediate.sandbox.incident`) crash-loops on ``csagent.sys``; an instance whose
:attr:`~remediate.sandbox.state.InstanceFacts.guest` says so crash-loops on another
bug check (``boot-loop``) or shows nothing (``black``); one still booting shows black;
anything else booted and shows its sign-in screen. So an instance the offline repair
fixed shows a sign-in screen once it boots again, with no test saying so.

Shapes are botocore's (``ec2/2016-11-15``): GetConsoleOutput's ``Output`` is the log,
base64-encoded (for Windows "the last three system event log errors" come with it, which
is where a bug check shows: event 1001, "The computer has rebooted from a bugcheck");
GetConsoleScreenshot's ``ImageData`` is "a JPG-format screenshot of a running
instance", base64-encoded.
"""

from __future__ import annotations

import base64
from typing import Any, Final

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.responses.general import General

from remediate.sandbox import errors, incident, screens
from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import World, current

GUESTS: Final = ("incident", "boot-loop", "black", "booting", "healthy")
"""What a guest can be doing, as :func:`guest` tells."""
SETTABLE_GUESTS: Final = ("boot-loop", "black")
"""What tests and FleetSpec may set on an instance (the others follow from its state)."""

_BOOT = ("{t}: EC2Launch: Windows is booting\n"
         "{t}: EC2Launch: AMI Origin Version: 2024.07.10\n"
         "{t}: EC2Launch: AMI Origin Name: Windows_Server-2019-English-Full-Base\n")
_INCIDENT = ("{t}: Event 1001 (BugCheck): The computer has rebooted from a bugcheck. The "
             "bugcheck was: 0x00000050 (0xffff9c8e0000008c, 0x0000000000000000, "
             "0xfffff8022a33e4a1, 0x0000000000000002).\n"
             "{t}: *** STOP: 0x00000050 (PAGE_FAULT_IN_NONPAGED_AREA)\n"
             "{t}: What failed: csagent.sys\n")
_OTHER = ("{t}: Event 1001 (BugCheck): The computer has rebooted from a bugcheck. The "
          "bugcheck was: 0x0000007b (0xffffe20a4c3c7448, 0xffffffffc0000034, "
          "0x0000000000000000, 0x0000000000000000).\n"
          "{t}: *** STOP: 0x0000007B (INACCESSIBLE_BOOT_DEVICE)\n")
_READY = ("{t}: EC2Launch: Message: Windows is Ready to use\n")
SERIAL: Final = {
    "incident": _BOOT + _INCIDENT,
    "boot-loop": _BOOT + _OTHER,
    "black": "",
    "booting": _BOOT,
    "healthy": _BOOT + _READY,
}
"""The serial log each guest writes (``{t}``: the time)."""
SCREEN: Final = {"incident": "stop-code", "boot-loop": "stop-code", "black": "black",
                 "booting": "black", "healthy": "login"}


def guest(world: World, instance: Any) -> str:
    """What the instance's guest is doing now (one of :data:`GUESTS`)."""
    if incident.root_is_bad(world, instance):
        return "incident"
    facts = world.facts(instance.id)
    if facts.guest is not None:
        return facts.guest
    if instance.state != "running" or facts.status == "initializing":
        return "booting"
    return "healthy"


def _instance(response: Any) -> Any:
    return response.ec2_backend.get_instance(response._get_param("InstanceId"))


def console_output(world: World, instance: Any) -> str:
    """The serial log of ``instance`` as its guest writes it now."""
    stamp = world.clock.wall().strftime("%Y/%m/%d %H:%M:%SZ")
    return SERIAL[guest(world, instance)].format(t=stamp)


def install(patcher: Patcher) -> None:
    def get_console_output(self: Any) -> ActionResult:
        instance = _instance(self)
        text = console_output(current(), instance)
        result: dict[str, Any] = {"InstanceId": instance.id, "Timestamp": utcnow()}
        if text:  # AWS leaves Output out while the instance has written nothing
            result["Output"] = base64.b64encode(text.encode()).decode("ascii")
        return ActionResult(result)

    def get_console_screenshot(self: Any) -> ActionResult:
        instance = _instance(self)
        if instance.state != "running":
            raise errors.not_running_for_reboot(instance.id)
        screen = SCREEN[guest(current(), instance)]
        return ActionResult({"InstanceId": instance.id, "ImageData": screens.image_data(screen)})

    patcher.set(General, "get_console_output", get_console_output)
    patcher.set(General, "get_console_screenshot", get_console_screenshot)
