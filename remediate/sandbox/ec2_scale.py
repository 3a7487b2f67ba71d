"""Make moto's EC2 backend scale to fleets of 10,000 instances.

moto looks instances, tags and AMIs up by scanning every object, which makes
building (and describing) a large fleet quadratic. These patches keep moto's
results but find them through dictionaries:

* ``InstanceBackend.get_instance``: an id index, refreshed from the newest
  reservation backwards on a miss;
* ``TaggedEC2Resource.get_tags``: a direct read of ``TagBackend.tags``;
* ``AmiBackend.describe_images``: the ``{"image-id": id}`` lookup every new
  ``Instance`` makes goes straight to the AMI dictionary;
* ``EBSBackend.describe_volumes``/``describe_snapshots``: a ``volume-id`` /
  ``snapshot-id`` filter of exact ids (what a poll of 200 volumes sends) picks
  them from the dictionary instead of matching every id pattern against every
  volume (20,000 volumes x 200 patterns a poll at 10,000 targets); the other
  filters then apply as moto applies them; a listing of snapshots that names no
  snapshot id leaves out those newer than ``Durations.listing_lag``;
* ``moto.settings.ec2_load_default_amis``: off, so a Region's backend does not
  parse moto's 1,300 public AMIs (the fleet registers its own images).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto import settings
from moto.ec2.exceptions import InvalidInstanceIdError
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, generic_filter, get_prefix

from remediate.sandbox.patcher import Patcher
from remediate.sandbox.state import maybe_current

_PATTERN_CHARS = frozenset("*?[")


def _exact(values: Any) -> list[str] | None:
    """The filter's values if each is a plain id (no fnmatch pattern), else None."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return None
    return None if any(_PATTERN_CHARS & set(v) for v in values) else values


def _narrowed(ids: list[str] | None, filters: Any,
              narrowers: dict[str, Callable[[list[str]], list[Any]]]) -> list[Any] | None:
    """The objects matching ``filters`` when one of them names exact ids that a narrower
    finds without a scan of patterns (and no ``ids`` argument complicates the errors);
    None: let moto do it."""
    if ids or not isinstance(filters, dict):
        return None
    for key, narrow in narrowers.items():
        exact = _exact(filters.get(key))
        if exact is not None:
            rest = {k: v for k, v in filters.items() if k != key}
            found = narrow(list(dict.fromkeys(exact)))
            return generic_filter(rest, found) if rest else found
    return None


def install(patcher: Patcher) -> None:
    original_describe_images = AmiBackend.describe_images
    original_describe_volumes = EBSBackend.describe_volumes
    original_describe_snapshots = EBSBackend.describe_snapshots

    def describe_volumes(self: Any, volume_ids: list[str] | None = None,
                         filters: Any = None) -> list[Any]:
        volumes = self.volumes
        found = _narrowed(volume_ids, filters, {
            "volume-id": lambda wanted: [volumes[i] for i in wanted if i in volumes]})
        if found is None:
            found = original_describe_volumes(self, volume_ids, filters)
        return found

    def describe_snapshots(self: Any, snapshot_ids: list[str] | None = None,
                           filters: Any = None) -> list[Any]:
        snapshots = self.snapshots

        def of_volumes(wanted: list[str]) -> list[Any]:
            volumes = set(wanted)
            return [s for s in snapshots.values() if s.volume.id in volumes]

        found = _narrowed(snapshot_ids, filters, {
            "snapshot-id": lambda wanted: [snapshots[i] for i in wanted if i in snapshots],
            "volume-id": of_volumes})
        if found is None:
            found = original_describe_snapshots(self, snapshot_ids, filters)
        named = snapshot_ids or (isinstance(filters, dict) and "snapshot-id" in filters)
        world = maybe_current()
        if named or world is None:
            return found
        # A listing (no ids named) lags behind creates: eventual consistency.
        return [snapshot for snapshot in found if world.listed(snapshot.id)]

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
    patcher.set(EBSBackend, "describe_volumes", describe_volumes)
    patcher.set(EBSBackend, "describe_snapshots", describe_snapshots)
    patcher.set(settings, "ec2_load_default_amis", lambda: False)
