"""The Spot request behind a Spot instance launched with RunInstances.

RunInstances with ``InstanceMarketOptions`` (MarketType ``spot``) makes EC2 open a
Spot Instance request for each instance, which DescribeSpotInstanceRequests then
answers (filter ``instance-id``), with its type (``one-time`` or ``persistent``),
and DescribeInstances names on the instance (``SpotInstanceRequestId``). moto
records no request for such a launch, so the tool could not tell a one-time Spot
instance (which cannot be stopped) from a persistent one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from moto.ec2.models.spot_requests import SpotInstanceRequest
from moto.ec2.utils import random_spot_request_id

# What the request says it would pay at most (AWS: the on-demand price when the
# launch sets no MaxPrice; m5.large in us-east-1).
DEFAULT_MAX_PRICE: Final = "0.096"


class _LaunchedRequest(SpotInstanceRequest):
    """A fulfilled request for an instance RunInstances already launched."""

    def __init__(self, backend: Any, instance: Any, spot_type: str, behaviour: str | None,
                 price: str | None) -> None:
        self._launched = instance
        super().__init__(
            backend, random_spot_request_id(), price or DEFAULT_MAX_PRICE, instance.image_id,
            spot_type, None, None, None, None, instance.key_name, [], None,
            instance.instance_type, instance.placement, None, None, False, instance.subnet_id,
            {}, None, behaviour)

    def launch_instance(self) -> Any:
        return self._launched


def record_requests(backend: Any, instances: Iterable[Any], spot_type: str,
                    behaviour: str | None, price: str | None) -> None:
    """Open (and fulfil) one Spot request per instance, as EC2 does for the launch."""
    for instance in instances:
        request = _LaunchedRequest(backend, instance, spot_type, behaviour, price)
        backend.spot_instance_requests[request.id] = request
        instance.spot_instance_request_id = request.id
