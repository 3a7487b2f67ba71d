"""What a chaos scenario must leave behind, as a list of problems (empty: all is well).

EC2 (the offline repair): every target fixed, or exactly as it was (state, root volume
at its device, DeleteOnTermination); one backup snapshot per target that got past its
backup step (none for the others); no root volume detached or on a rescue instance,
no volume left available, no rescue instance, no claim tag. WorkSpaces: every one
AVAILABLE, or as it was; no restore or rebuild begun twice on one, none on one that did
not need it; no claim tag.

Two ends other than "fixed" are the tool's own, documented and safe, so they are allowed:

- a target refused because its claim tag was written too long after it was read (the
  claim cannot be trusted: remediate.executor.claiming). The scenario's clock runs 100
  times faster than the real one, so a process short of CPU for 50 ms is 5 s late (the
  scenarios spare the claim tags' calls the random throttles, which made this common);
  such a target must be exactly as it was;
- a WorkSpace whose rebuild may have been sent as the run was killed and never showed:
  it is not sent again (the step fails, saying so). Likewise a restore that never showed
  is not sent again: its WorkSpace goes on to the rebuild, so one that needed a restore
  may have had a rebuild instead, and one that needed a rebuild no restore.
"""

from __future__ import annotations

from pathlib import Path

from cli_support import (
    RootState,
    backups,
    misplaced_roots,
    repair_problems,
    rescue_instances,
    root_state,
)
from e2e_support import InThreadServer, journal_rows
from remediate.claims.tag import CLAIM_TAG

# A target ends fixed (succeeded), put back (rolled back: its repair failed) or, once the
# failure budget is spent, not started (skipped); nothing else is an end.
EC2_ENDS = frozenset({"succeeded", "rolled_back", "skipped"})
CLAIM_LATE = "to be written after it was read (throttled; more than"
# What each WorkSpace condition may need begun on it, once at most.
DESTRUCTIVE = {"RestoreWorkspace": frozenset({"restore", "rebuild"}),
               "RebuildWorkspaces": frozenset({"rebuild"})}


def _by_id(journal: Path, column: str = "status") -> dict[str, str]:
    """Resource id -> the journal's ``column`` (status, error) of its target."""
    rows = journal_rows(journal, f"SELECT target_key, {column} FROM targets")
    return {key.rsplit("/", 1)[-1]: value for key, value in rows}


def _claim_late(errors: dict[str, str], resource_id: str, status: str) -> bool:
    return status == "refused" and CLAIM_LATE in (errors.get(resource_id) or "")


def ec2_problems(server: InThreadServer, before: dict[str, RootState],
                 journal: Path) -> list[str]:
    ec2 = server.client("ec2")
    statuses, errors = _by_id(journal), _by_id(journal, "error")
    backed_up = {key.rsplit("/", 1)[-1] for (key,) in journal_rows(
        journal, "SELECT DISTINCT target_key FROM steps WHERE step_id = 'backup' "
                 "AND rollback = 0 AND status = 'succeeded'")}
    problems = [f"{i}: not in the journal" for i in before if i not in statuses]
    for instance_id, status in sorted(statuses.items()):
        was = before[instance_id]
        if status not in EC2_ENDS and not _claim_late(errors, instance_id, status):
            problems.append(f"{instance_id}: ended {status}: {errors.get(instance_id)}")
        if status == "succeeded":
            problems += [f"{instance_id} (fixed): {p}" for p in repair_problems(ec2, was)]
        elif (now := root_state(ec2, instance_id)) != was:
            problems.append(f"{instance_id} ({status}): {now}, was {was}")
        count, expected = len(backups(ec2, instance_id)), int(instance_id in backed_up)
        if count != expected:
            problems.append(f"{instance_id} ({status}): {count} backup snapshots, "
                            f"{expected} expected")
    problems += [f"misplaced root: {m}" for m in misplaced_roots(ec2, before)]
    problems += [f"rescue instance left: {i}" for i in rescue_instances(ec2)]
    available = ec2.describe_volumes(Filters=[{"Name": "status", "Values": ["available"]}])
    problems += [f"volume left available: {v['VolumeId']}" for v in available["Volumes"]]
    claims = ec2.describe_tags(Filters=[{"Name": "key", "Values": [CLAIM_TAG]}])["Tags"]
    problems += [f"claim tag left on {t['ResourceId']}: {t['Value']}" for t in claims]
    return problems


def workspace_problems(server: InThreadServer, before: dict[str, str],
                       journal: Path) -> list[str]:
    """``before``: each WorkSpace's state before the run."""
    statuses, errors = _by_id(journal), _by_id(journal, "error")
    states = server.workspace_states()
    client = server.client("workspaces")
    world = server.sandbox.world
    problems = []
    for workspace in server.fleet.workspaces:
        wid, needs = workspace.workspace_id, workspace.fixed_by
        status, now = statuses.get(wid), states[wid]
        with world.lock:
            changes = list(world.workspace(wid).changes)
        unseen = (status == "failed" and "RebuildWorkspaces" not in changes
                  and f"RebuildWorkspaces may have been sent to {wid}" in (errors[wid] or ""))
        as_it_was = (_claim_late(errors, wid, status or "") and not changes
                     and now == before[wid])
        if not ((status, now) == ("succeeded", "AVAILABLE") or unseen or as_it_was):
            problems.append(f"{wid} ({needs}): ended {status}, {now}: {errors.get(wid)}")
        for operation, conditions in DESTRUCTIVE.items():
            # A restore that never showed goes on to the rebuild: one the WorkSpace did not
            # need, but no restore was made then.
            allowed = needs in conditions or (
                operation == "RebuildWorkspaces" and "RestoreWorkspace" not in changes
                and needs in DESTRUCTIVE["RestoreWorkspace"])
            if changes.count(operation) > int(allowed):
                problems.append(f"{wid} ({needs}): {operation} began {changes.count(operation)} "
                                f"times ({', '.join(changes)})")
        tags = client.describe_tags(ResourceId=wid)["TagList"]
        problems += [f"claim tag left on {wid}: {t['Value']}" for t in tags
                     if t["Key"] == CLAIM_TAG]
    return problems
