"""Make moto's EC2 backend scale to fleets of 10,000 instances.

moto looks instances, tags and AMIs up by scanning every object, which makes
building (and describing) a large fleet quadratic. These patches keep moto's
results but find them through dictionaries:

* ``InstanceBackend.get_instance``: an id index, refreshed from the newest
  reservation backwards on a miss;
* ``TaggedEC2Resource.get_tags``: a direct read of ``TagBackend.tags``;
* ``AmiBackend.describe_images``: the ``{"image-id": id}`` lookup every new
  ``Instance`` makes goes straight to the AMI dictionary;
* ``moto.settings.ec2_load_default_amis``: off, so a Region's backend does not
  parse moto's 1,300 public AMIs (the fleet registers its own images).
"""

from __future__ import annotations

from typing import Any

from moto import settings
from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

from remediate.sandbox.patcher import Patcher


def install(patcher: Patcher) -> None:
    original_describe_images = AmiBackend.describe_images

    def get_instance(self: Any, instance_id: str) -> Any:
        index: dict[str, Any] = self.__dict__.setdefault("_sandbox_index", {})
        found = index.get(instance_id)
        if found is not None:
            return found
        for reservation in reversed(list(self.reservations.values())):
            for instance in reservation.instances:
                index[instance.id] = instance
            if instance_id in index:
                return index[instance_id]
        raise InvalidInstanceIdError(instance_id)

    def get_tags(self: Any) -> list[dict[str, str]]:
        resource_id = getattr(self, "id", None)
        if not resource_id:
            return []
        tags = self.ec2_backend.tags.get(resource_id, {})
        resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [
            {"resource_id": resource_id, "key": k, "value": v, "resource_type": resource_type}
            for k, v in tags.items()
        ]

    def describe_images(
        self: Any,
        ami_ids: list[str] | None = None,
        filters: dict[str, Any] | None = None,
        exec_users: list[str] | None = None,
        owners: list[str] | None = None,
    ) -> list[Any]:
        exact_id = (
            not ami_ids
            and not exec_users
            and not owners
            and filters is not None
            and list(filters) == ["image-id"]
            and isinstance(filters["image-id"], str)
        )
        if exact_id and filters is not None:
            ami = self.amis.get(filters["image-id"])
            return [] if ami is None else [ami]
        return list(original_describe_images(self, ami_ids, filters, exec_users, owners))

    patcher.set(InstanceBackend, "get_instance", get_instance)
    patcher.set(TaggedEC2Resource, "get_tags", get_tags)
    patcher.set(AmiBackend, "describe_images", describe_images)
    patcher.set(settings, "ec2_load_default_amis", lambda: False)
