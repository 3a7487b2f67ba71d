"""A run's batches of targets in S3, for executions whose input cannot hold them.

AWS caps an execution's input at 256 KiB (about 3,700 targets). With an items
bucket (``--items-bucket``) the run writes each batch's items to
``s3://BUCKET/remediate/RUN_ID/batch-NNNN.json`` (a JSON array, one object per
batch), the execution input lists those keys, and each batch's Distributed Map
reads its items with an ``ItemReader`` (``arn:aws:states:::s3:getObject``,
``ReaderConfig.InputType: JSON``). The bucket is named in the definition, so
the role policy can grant ``s3:GetObject`` on exactly its ``remediate/`` keys;
it must be in the state machine's account and Region. The objects are left
where they are after the run (a redrive reads them again): expire them with a
lifecycle rule on ``remediate/``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

PREFIX: Final = "remediate"
GET_OBJECT: Final = "arn:aws:states:::s3:getObject"


def item_key(run_id: str, index: int) -> str:
    """Where batch ``index`` (0-based) of run ``run_id`` is kept."""
    return f"{PREFIX}/{run_id}/batch-{index + 1:04d}.json"


def write_items(s3: Any, bucket: str, run_id: str,
                batches: Sequence[Sequence[Mapping[str, str]]]) -> list[str]:
    """Write each batch's items (PutObject); their keys, in the batches' order."""
    keys = []
    for index, items in enumerate(batches):
        key = item_key(run_id, index)
        s3.put_object(Bucket=bucket, Key=key, ContentType="application/json",
                      Body=json.dumps(list(items), separators=(",", ":")).encode())
        keys.append(key)
    return keys


def item_reader(bucket: str, key_path: str) -> dict[str, Any]:
    """A Distributed Map's ItemReader of the JSON array at ``key_path`` in ``bucket``."""
    return {"Resource": GET_OBJECT, "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": bucket, "Key.$": key_path}}


def read_statement(bucket: str) -> dict[str, Any]:
    """The execution role's permission to read the batches."""
    return {"Sid": "RemediateItemReader", "Effect": "Allow", "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{bucket}/{PREFIX}/*"]}
