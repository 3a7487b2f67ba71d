"""``ec2.confirm_backup``: the backup snapshot taken earlier in the run reached ``completed``.

An EBS snapshot is point-in-time when CreateSnapshot returns: the volume can be
stopped, detached and changed while the snapshot is still ``pending`` ("Create Amazon
EBS snapshots", docs.aws.amazon.com/ebs/latest/userguide/ebs-creating-snapshot.html:
"The snapshot is created immediately, but it remains in the pending state until all of
data has been transferred to Amazon S3 [...] You can continue to use the volume during
this time without impacting the snapshot"). So the
offline repair takes its backup without waiting (``ec2.snapshot_root`` with ``wait:
false``) and confirms it here, at its end, before the target counts as fixed: a first
snapshot of a large volume takes many minutes, spent while the swap goes on instead of
before it.

A backup that ends ``error`` fails this step, and the playbook says ``on_failure:
abort``: the target ends ``failed`` without a rollback. By then the repair is done
and the instance is back; putting the broken volume back would undo a good repair to
recover nothing (the snapshot that failed holds nothing to restore). The failure says
so, and that no good backup from before the run exists, so the operator can take one.
Nothing is deleted (the snapshot in ``error`` is left for the operator to look at).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from remediate.actions.contract import Plan, StepContext
from remediate.actions.ec2_inspect import iam, planned
from remediate.actions.ec2_power import timeout_field
from remediate.actions.ec2_volumes import SNAPSHOT_ID
from remediate.actions.program import (
    TARGET_ID,
    Await,
    Done,
    Eq,
    Exists,
    Fmt,
    In,
    Program,
    Var,
    program,
)
from remediate.actions.programmed import ProgramAction
from remediate.actions.registry import register
from remediate.language.schema import Field
from remediate.language.schema import Record as Schema

IT: Final = Var("it")
SNAPSHOT: Final = Var("params.snapshot_id")


@register
class ConfirmBackup(ProgramAction):
    """Wait until the backup snapshot is completed; fail, saying what it means, if it is not."""

    name = "ec2.confirm_backup"
    summary = "wait until the backup snapshot is completed (fail if it ends in error)"
    params = Schema(fields={
        "snapshot_id": Field(SNAPSHOT_ID, required=True, description=(
            "the backup to confirm, e.g. ${{ steps.backup.outputs.snapshot_id }}")),
        "timeout": timeout_field("2h", "how long the snapshot may take to complete"),
    })
    outputs = {"snapshot_id": "the backup snapshot", "state": "'completed'"}
    permissions = iam("ec2:DescribeSnapshots")
    verify = "the snapshot is 'completed'"

    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        return Plan(calls=planned("ec2:DescribeSnapshots", note="until the backup completes"))

    def program(self, params: Mapping[str, Any]) -> Program:
        # A failed wait reads "backup snap-...: <why>".
        kept = ("the steps before this one are done and were not rolled back (take a new "
                "snapshot if one is needed)")
        return program(
            Await("snapshot", "snapshot", SNAPSHOT, until=Eq(IT.State, "completed"),
                  fail=((Exists(IT, False), Fmt("it no longer exists: ", TARGET_ID,
                                                f" has no backup from before this run; {kept}")),
                        (In(IT.State, "error"), Fmt(
                            "it is ", IT.State, ": ", TARGET_ID, " has no good backup of its "
                            f"root volume from before this run; {kept}"))),
                  timeout=params["timeout"], what=Fmt("backup ", SNAPSHOT)),
            Done({"snapshot_id": SNAPSHOT, "state": "completed"}))
