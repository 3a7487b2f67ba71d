"""``--tag-classes``: each target tagged with its class, so `run --tag` can select them.

The tag is ``remediate:triage=<class>``. Tagging is the one thing triage changes, and it
is idempotent rather than journaled: an instance whose tag already says its class is
not tagged again (DescribeInstances brought its tags), a WorkSpace's tag is set again
(reading them would cost a DescribeTags per WorkSpace) and setting a tag to the value it
has changes nothing, so a triage interrupted halfway is simply run again. EC2's
CreateTags takes up to 1,000 resources a call (one call per class); WorkSpaces' takes one
WorkSpace a call. Both are paced like every other call (their own buckets:
:mod:`remediate.aws.apis`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from remediate.actions.requests import AwsError
from remediate.triage.classes import TAG_KEY
from remediate.triage.pacing import Call, PacedCalls
from remediate.triage.reading import Reading
from remediate.triage.verdicts import Verdict

EC2_TAGS_PER_CALL: Final = 1000


def tag_classes(calls: PacedCalls, verdicts: Sequence[Verdict],
                readings: Sequence[Reading]) -> list[str]:
    """Tag every target whose tag does not say its class yet; the failures, one line
    each (empty: all tagged)."""
    failures: list[str] = []
    current = {r.target.key: r.tags.get(TAG_KEY) for r in readings}
    ec2: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for verdict in verdicts:
        target = verdict.target
        if current.get(target.key) == verdict.triage_class:
            continue
        tag = [{"Key": TAG_KEY, "Value": verdict.triage_class}]
        if target.kind == "ec2-instance":
            ec2[(target.account, target.region, verdict.triage_class)].append(target.id)
        else:
            calls.add(Call(target.account, target.region, "workspaces", "CreateTags",
                           {"ResourceId": target.id, "Tags": tag},
                           _noting(failures, [target.id])))
    for (account, region, name), ids in ec2.items():
        for start in range(0, len(ids), EC2_TAGS_PER_CALL):
            chunk = ids[start:start + EC2_TAGS_PER_CALL]
            calls.add(Call(account, region, "ec2", "CreateTags",
                           {"Resources": chunk, "Tags": [{"Key": TAG_KEY, "Value": name}]},
                           _noting(failures, chunk)))
    calls.run()
    return failures


def _noting(failures: list[str], ids: list[str]) -> Any:
    def done(_answer: Mapping[str, Any] | None, error: AwsError | None) -> None:
        if error is not None:
            failures.append(f"could not tag {', '.join(ids)}: CreateTags: {error}")

    return done
