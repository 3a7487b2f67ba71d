"""Dry-run permission probes ask what the real calls would, so a scoped policy judges alike."""

from __future__ import annotations

from remediate.actions.registry import get
from remediate.executor.permission_probe import PROBES

FACTS = {"id": "i-0123456789abcdef0", "root_volume_id": "vol-0123456789abcdef0",
         "root_device_name": "/dev/sda1"}


def test_the_create_tags_probe_sets_a_tag_detach_root_may_set() -> None:
    probe = PROBES["CreateTags"](FACTS)
    assert probe == {"Resources": ["vol-0123456789abcdef0"],
                     "Tags": [{"Key": "remediate:root-of", "Value": "i-0123456789abcdef0"}]}
    detach = get("ec2.detach_root")
    assert detach is not None
    (grant,) = [g for g in detach.scoped_permissions if g.action == "ec2:CreateTags"]
    (tag_keys,) = grant.conditions
    assert tag_keys.key == "aws:TagKeys"
    assert {tag["Key"] for tag in probe["Tags"]} <= set(tag_keys.values)
