"""ssm.verify_guest, the in-guest proof of recovery: the same end on both engines.

Targets: healthy instances launched beside the fleet (Online in SSM): one recovered,
one whose sensor service is stopped, one whose root still holds the faulty channel
file; and a boot-looping one of the fleet, whose agent never comes Online (its check
is skipped, not failed).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from parity_support import both_engines, one_step
from sfn_support import NO_RETRIES, REGION, ec2_targets
from test_parity_ssm import Healthy, commands

from remediate.actions.contract import Target
from remediate.clock import VirtualClock
from remediate.sandbox import Fleet, FleetSpec, Sandbox


class Checked(Healthy):
    """Three healthy instances: recovered, sensor stopped, channel file still there."""

    def prepare(self, sb: Sandbox, fleet: Fleet, clock: VirtualClock) -> dict[str, Any]:
        found = super().prepare(sb, fleet, clock)
        _recovered, stopped, faulty = self.ids
        sb.world.sensor_stopped.add(stopped)
        ec2 = sb.client("ec2", REGION, NO_RETRIES)
        instance = ec2.describe_instances(InstanceIds=[faulty])["Reservations"][0]["Instances"][0]
        sb.world.bad_volumes.add(instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"])
        return found

    def targets(self, fleet: Fleet) -> list[Target]:
        return super().targets(fleet) + ec2_targets(fleet.targets)


def test_the_check_passes_a_recovered_guest_and_fails_the_others_with_what_it_found(
        ) -> None:
    checked = Checked(3)
    text = one_step("ssm.verify_guest", {"online_within": "2m"})

    found = both_engines(FleetSpec(plain=1, azs=1), text,
                         lambda sb, fleet: (commands(sb, checked.ids),
                                            commands(sb, fleet.instance_ids())),
                         prepare=checked.prepare, targets=checked.targets)

    sent, to_boot_looping = found.local
    assert to_boot_looping == found.stepfunctions[1] == Counter()  # skipped: nothing sent
    (document, lines, _, _) = next(iter(sent))
    assert document == "AWS-RunPowerShellScript"
    assert lines[1].startswith("# crowdstrike-verify.ps1")
    assert lines[0].startswith("$InstanceId = 'i-")
    ends = Counter((status, code) for (_, _, status, code), n in sent.items()
                   for _ in range(n))
    assert ends == Counter({("Success", 0): 1, ("Failed", 3): 1, ("Failed", 2): 1})
    assert Counter((status, code) for (_, _, status, code), n in found.stepfunctions[0].items()
                   for _ in range(n)) == ends
    # Recovered, and the boot-looping one (agent never Online: skipped) succeed.
    assert found.local_statuses == {"succeeded": 2, "failed": 2}
    assert found.sfn_statuses == {"succeeded": 2, "failed": 2}
