"""The command line against the in-process sandbox, and the end state a run must leave.

`cli_sandbox()` starts a sandbox on a virtual clock, builds a broken fleet and
points every command at it: `remediate.cli.main.main([...])` then runs exactly as
from a shell (the one exception boundary, exit codes, stderr), except that AWS
is the sandbox and time is simulated (the `Environment` the commands build is
the sandbox's). The end-state checks only use boto3, so the subprocess scenarios
(tests/e2e) use them against a sandbox server too.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from remediate.cli import launch, resume
from remediate.cli.launch import Environment
from remediate.cli.main import main
from remediate.clock import Clock, ScaledClock, VirtualClock
from remediate.executor.events import Event, StepFinished
from remediate.sandbox import Fleet, FleetSpec, Sandbox

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
OFFLINE_REPAIR = str(PLAYBOOKS / "ec2-offline-repair.yaml")
REBOOT_FIRST = str(PLAYBOOKS / "ec2-reboot-first.yaml")
REPLACE_ROOT = str(PLAYBOOKS / "ec2-replace-root-volume.yaml")
WORKSPACES_RECOVER = str(PLAYBOOKS / "workspaces-recover.yaml")
REGION = "us-east-1"
FAKE_AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}
# Environment variables that would point boto3 somewhere other than the sandbox.
FOREIGN_AWS_ENV = ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN",
                   "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                   "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


@dataclass
class CliSandbox:
    sandbox: Sandbox
    fleet: Fleet
    clock: Clock

    @property
    def ec2(self) -> Any:
        return self.sandbox.client("ec2")

    @property
    def rescue_param(self) -> list[str]:
        """``--param rescue_image_id=...`` for ec2-offline-repair."""
        return ["--param", f"rescue_image_id={self.fleet.regions[REGION].rescue_windows_ami}"]

    def mutating_calls(self) -> list[str]:
        return [call.operation for call in self.sandbox.api_calls if call.mutating]


@dataclass
class Inbox:
    """An SNS topic with an SQS queue subscribed to it: what `--notify` published."""

    sns: Any
    sqs: Any
    topic_arn: str
    queue_url: str

    def messages(self) -> list[tuple[str, Any]]:
        """(subject, decoded JSON message) of everything published since the last call."""
        notes = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url,
                                                MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                envelope = json.loads(message["Body"])
                notes.append((envelope["Subject"], json.loads(envelope["Message"])))
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])
        return notes


def notified_subjects(playbook: str, batches: int) -> list[str]:
    """What `--notify` publishes for a run of ``playbook`` in ``batches`` batches."""
    return [f"remediate run started: {playbook}",
            *(f"remediate {playbook}: batch {n}/{batches} done" for n in range(1, batches + 1)),
            f"remediate {playbook}: finished"]


def sns_inbox(sandbox: Sandbox, name: str = "outage-bridge") -> Inbox:
    sns, sqs = sandbox.client("sns"), sandbox.client("sqs")
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return Inbox(sns, sqs, topic, queue)


def run_cli(*args: str) -> int:
    """``remediate ARGS`` in this process (what the console script calls)."""
    return main(list(args))


def exit_err_calls(cli: CliSandbox, capsys: pytest.CaptureFixture[str],
                   *args: str) -> tuple[int, str, int]:
    """``remediate ARGS``: its exit code, its stderr and how many AWS calls it made (a
    command refused in one line must make none)."""
    cli.sandbox.reset_api_calls()
    capsys.readouterr()
    code = run_cli(*args)
    return code, capsys.readouterr().err, len(cli.sandbox.api_calls)


def when_step_finishes(monkeypatch: pytest.MonkeyPatch, step_id: str,
                       action: Callable[[], object], nth: int = 1) -> None:
    """Do ``action`` once, when the ``nth`` target of `remediate run` (or `resume`) to do
    so finishes ``step_id`` (a subscriber on the command's event bus)."""
    finished: list[str] = []

    def watch(event: Event) -> None:
        if isinstance(event, StepFinished) and event.step_id == step_id and not event.rollback:
            finished.append(event.target.id)
            if len(finished) == nth:
                action()

    for module in (launch, resume):
        real = module.subscribers

        def watched(*args: Any, real: Any = real, **kwargs: Any) -> Any:
            bus = real(*args, **kwargs)
            bus.subscribe(watch)
            return bus

        monkeypatch.setattr(module, "subscribers", watched)


def ctrl_c_after(monkeypatch: pytest.MonkeyPatch, step_id: str, nth: int = 1) -> None:
    """Press Ctrl-C once, when the ``nth`` target finishes ``step_id``: a real SIGINT to
    this process, seen by the command's own handler exactly as from a terminal."""
    when_step_finishes(monkeypatch, step_id, lambda: os.kill(os.getpid(), signal.SIGINT), nth)


def use_fake_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and Region for moto; nothing that could reach a real account."""
    for name in FOREIGN_AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)


def point_commands_at(monkeypatch: pytest.MonkeyPatch, clock: Any, session: Any,
                      interactive: bool = False) -> None:
    """Every command's `Environment()` is this one (``session`` None: the credentials
    chain, as on an SRE's laptop)."""
    def environment() -> Environment:
        return Environment(clock=clock, session=session, interactive=interactive)

    monkeypatch.setattr(launch, "Environment", environment)
    monkeypatch.setattr(resume, "Environment", environment)


@contextmanager
def cli_sandbox(monkeypatch: pytest.MonkeyPatch, spec: FleetSpec,
                clock: Any = None) -> Iterator[CliSandbox]:
    """The sandbox with ``spec``'s fleet, and every command pointed at it; ``clock``: the
    sandbox's and the commands' (default a :class:`VirtualClock`, where time stands still
    between two readings; see :func:`moving_clock`)."""
    clock = clock or VirtualClock()
    use_fake_aws_env(monkeypatch)
    with Sandbox(clock=clock) as sandbox:
        fleet = sandbox.build_fleet(spec)
        point_commands_at(monkeypatch, clock, sandbox.boto3_session())
        yield CliSandbox(sandbox, fleet, clock)


def moving_clock() -> ScaledClock:
    """A clock that moves between two readings, as an operator's does (time passes while
    the tool computes), shared by the sandbox and the commands: 300 simulated seconds per
    real second, so a 3-minute wait takes 0.6 s, and a step's 30-minute timeout (6 s)
    leaves the in-process AWS calls ample real time."""
    return ScaledClock(300.0)


# ---- the state of a target --------------------------------------------------------------


@dataclass(frozen=True)
class RootState:
    """What the volume swap must put back exactly as it found it."""

    instance_id: str
    state: str
    device: str
    volume_id: str
    delete_on_termination: bool


def instance(ec2: Any, instance_id: str) -> dict[str, Any]:
    found: dict[str, Any] = ec2.describe_instances(InstanceIds=[instance_id])[
        "Reservations"][0]["Instances"][0]
    return found


def root_state(ec2: Any, instance_id: str) -> RootState:
    found = instance(ec2, instance_id)
    device = found["RootDeviceName"]
    mapping = {m["DeviceName"]: m["Ebs"] for m in found["BlockDeviceMappings"]}
    ebs = mapping.get(device, {})
    return RootState(instance_id, found["State"]["Name"], device, ebs.get("VolumeId", ""),
                     bool(ebs.get("DeleteOnTermination")))


def root_states(ec2: Any, instance_ids: Sequence[str]) -> dict[str, RootState]:
    return {i: root_state(ec2, i) for i in instance_ids}


def status_ok(ec2: Any, instance_id: str) -> bool:
    statuses = ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
    return bool(statuses) and statuses[0]["InstanceStatus"]["Status"] == "ok" \
        and statuses[0]["SystemStatus"]["Status"] == "ok"


def backups(ec2: Any, instance_id: str) -> list[dict[str, Any]]:
    """The backup snapshots remediate took of the instance's root volume."""
    found: list[dict[str, Any]] = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:remediate:purpose", "Values": ["backup"]},
        {"Name": "tag:remediate:target", "Values": [instance_id]}])["Snapshots"]
    return found


def tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def rescue_instances(ec2: Any) -> list[str]:
    """Rescue instances not terminated: a run must leave none behind."""
    found = ec2.describe_instances(Filters=[
        {"Name": "tag:remediate:role", "Values": ["rescue"]},
        {"Name": "instance-state-name",
         "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def misplaced_roots(ec2: Any, before: dict[str, RootState]) -> list[str]:
    """Root volumes (of ``before``) that are not attached to their own instance at their
    own device: detached, or on a rescue instance. The worst outcome of a crash."""
    volumes = ec2.describe_volumes(
        VolumeIds=[s.volume_id for s in before.values()])["Volumes"]
    out = []
    for volume in volumes:
        owner = next(s for s in before.values() if s.volume_id == volume["VolumeId"])
        where = [(a["InstanceId"], a["Device"]) for a in volume["Attachments"]
                 if a["State"] in ("attaching", "attached")]
        if where != [(owner.instance_id, owner.device)]:
            out.append(f"{volume['VolumeId']} of {owner.instance_id}: {volume['State']} "
                       f"at {where}")
    return out


def repair_problems(ec2: Any, before: RootState,
                    channel_file_present: Callable[[str], bool] | None = None) -> list[str]:
    """Why the target is not repaired as the offline repair promises (empty: it is):
    running, status checks ok, its own root volume back at its own device with the same
    DeleteOnTermination, a tagged backup snapshot of it, and (in-process) the channel
    file gone from the volume."""
    now = root_state(ec2, before.instance_id)
    problems = []
    if now.state != "running":
        problems.append(f"state {now.state}")
    if (now.device, now.volume_id) != (before.device, before.volume_id):
        problems.append(f"root {now.volume_id} at {now.device}, was {before.volume_id} at "
                        f"{before.device}")
    if now.delete_on_termination != before.delete_on_termination:
        problems.append(f"DeleteOnTermination {now.delete_on_termination}, was "
                        f"{before.delete_on_termination}")
    if not status_ok(ec2, before.instance_id):
        problems.append("status checks not ok")
    snapshots = backups(ec2, before.instance_id)
    if not any(s["VolumeId"] == before.volume_id and s["State"] == "completed"
               and tags(s).get("remediate:run-id") for s in snapshots):
        problems.append(f"no completed backup snapshot of {before.volume_id} tagged with "
                        f"its run: {snapshots}")
    if channel_file_present is not None and channel_file_present(before.volume_id):
        problems.append("channel file still on the root volume")
    return problems


def json_file(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
