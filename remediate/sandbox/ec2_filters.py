"""DescribeInstances filters: the ones moto does not know, and the ones AWS does not.

Playbooks select Windows instances with ``platform: windows`` (AWS's filter);
moto raises NotImplementedError for it, so the mapping of filter names to
instance attributes gets the missing entries. A filter AWS does not have at all
(``--filter bogus-filter=1``) is AWS's ``InvalidParameterValue`` here too, not a
moto crash (a 500 and an HTML page from the server): the names AWS has are the
ones botocore's EC2 model documents for the operation.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2 import utils
from moto.ec2.responses.instances import InstanceResponse

from remediate.sandbox import errors
from remediate.sandbox.botocore_models import ec2_model
from remediate.sandbox.patcher import Patcher

EXTRA = {"platform": "platform", "instance-lifecycle": "lifecycle"}
TAG_PREFIX = "tag:"


@cache
def documented_filters(operation: str) -> frozenset[str]:
    """The filter names the EC2 API reference lists for ``operation``."""
    doc = ec2_model().operation_model(operation).input_shape.members["Filters"].documentation
    return frozenset(re.findall(r"<li>\s*<p>\s*<code>([^<]+)</code>", doc))


def check_filters(operation: str, names: Any) -> None:
    """AWS's answer to a filter name ``operation`` does not have."""
    known = documented_filters(operation)
    for name in names:
        if name not in known and not name.startswith(TAG_PREFIX):
            raise errors.invalid_filter(name)


def install(patcher: Patcher) -> None:
    patcher.set(utils, "filter_dict_attribute_mapping",
                {**utils.filter_dict_attribute_mapping, **EXTRA})
    original = InstanceResponse.describe_instances

    def describe_instances(self: Any) -> ActionResult:
        check_filters("DescribeInstances", self._filters_from_querystring())
        result: ActionResult = original(self)
        return result

    patcher.set(InstanceResponse, "describe_instances", describe_instances)
