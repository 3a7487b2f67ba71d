"""DescribeInstances filters moto does not know: ``platform``, ``instance-lifecycle``.

Playbooks select Windows instances with ``platform: windows`` (AWS's filter);
moto raises NotImplementedError for it, so the mapping of filter names to
instance attributes gets the missing entries.
"""

from __future__ import annotations

from moto.ec2 import utils

from remediate.sandbox.patcher import Patcher

EXTRA = {"platform": "platform", "instance-lifecycle": "lifecycle"}


def install(patcher: Patcher) -> None:
    patcher.set(utils, "filter_dict_attribute_mapping",
                {**utils.filter_dict_attribute_mapping, **EXTRA})
