"""DescribeInstanceAttribute for ``blockDeviceMapping`` (moto answers under the
wrong key): answer with AWS's ``BlockDeviceMappings`` list, including each
volume's ``DeleteOnTermination`` flag as ModifyInstanceAttribute left it.
``disableApiStop`` and the DeleteOnTermination modification work in moto as is.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.responses.instances import InstanceResponse

from remediate.sandbox.patcher import Patcher


def install(patcher: Patcher) -> None:
    original = InstanceResponse.describe_instance_attribute

    def describe_instance_attribute(self: Any) -> ActionResult:
        if self._get_param("Attribute") != "blockDeviceMapping":
            result: ActionResult = original(self)
            return result
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        return ActionResult(
            {"InstanceId": instance.id, "BlockDeviceMappings": instance.block_device_mappings}
        )

    patcher.set(InstanceResponse, "describe_instance_attribute", describe_instance_attribute)
