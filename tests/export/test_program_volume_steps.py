"""What the volume actions' port added to programs, on both engines: ``Find``, a Send's
``subject`` and ``reconcile_on``, ``run.step``, Await predicates on a list element's
field, params only known at run time in predicates, and the timed-out message of an
Await that names values.

Each program runs locally (a SyncRuntime on the sandbox) and compiled, as a state
machine of its own on moto's Step Functions against the same kind of sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from sfn_support import NO_RETRIES, REGION, Outcome, _run

from remediate.actions import interpret
from remediate.actions.contract import StepContext, Target
from remediate.actions.program import (
    TARGET_ID,
    Await,
    Done,
    Eq,
    Exists,
    Find,
    Fmt,
    If,
    Program,
    Send,
    Set,
    Var,
    program,
)
from remediate.actions.requests import OutcomeUnknown, StepFailed, WaitTimeout
from remediate.clock import VirtualClock
from remediate.executor.driver import SyncRuntime
from remediate.export.asl import Ref
from remediate.export.compiler import unsafe_paths
from remediate.export.fragment import AslStep
from remediate.export.moto_engine import MotoStepFunctions
from remediate.export.program_asl import compile_program
from remediate.sandbox import Durations, FleetSpec, Sandbox

MAPPINGS = [{"DeviceName": "/dev/sdf", "Ebs": {"VolumeId": "vol-f"}},
            {"DeviceName": "/dev/sda1", "Ebs": {"VolumeId": "vol-root"}},
            {"DeviceName": "/dev/sda1", "Ebs": {"VolumeId": "vol-second"}}]


@dataclass
class Engines:
    sb: Sandbox
    engine: MotoStepFunctions
    target: Any  # the sandbox fleet's one target
    runs: int = 0

    def local(self, steps: Program, params: Mapping[str, Any] | None = None, *,
              step_id: str = "step", reply_lost: bool = False) -> Mapping[str, Any]:
        """The program's outputs, run by the local engine (a StepFailed or OutcomeUnknown
        raises)."""
        runtime = SyncRuntime(lambda service, region: self.sb.client(service, region,
                                                                      NO_RETRIES),
                              self.sb.clock)
        target = Target("ec2-instance", self.target.instance_id, REGION)
        ctx = StepContext("run-1", target, self.facts(), runtime, step_id=step_id,
                          sent_before=lambda _op: reply_lost,
                          unanswered_before=lambda _op: reply_lost)
        return runtime.drive(interpret.run(steps, ctx, dict(params or {})), REGION)

    def stepfunctions(self, steps: Program, params: Mapping[str, Any] | None = None, *,
                      step_id: str = "step") -> Outcome:
        fragment = compile_program(AslStep(step_id, "test.program", dict(params or {})), steps)
        assert list(unsafe_paths(fragment.states)) == []
        self.runs += 1
        run_id = f"run-{self.runs}"
        document = {"target": {**self.facts(), "id": self.target.instance_id},
                    "run": {"id": run_id}}
        return _run(self.sb, self.engine, f"program-{self.runs}",
                    {"StartAt": fragment.start, "States": fragment.states}, document, run_id)

    def facts(self) -> dict[str, Any]:
        return {"region": REGION, "root_volume_id": self.target.root_volume_id,
                "root_device_name": self.target.root_device_name}

    def stop(self) -> None:
        self.sb.client("ec2", REGION, config=NO_RETRIES).stop_instances(
            InstanceIds=[self.target.instance_id])
        self.sb.clock.advance(self.sb.durations.instance_stop + 1)


@pytest.fixture
def engines() -> Iterator[Engines]:
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        fleet = sb.build_fleet(FleetSpec(plain=1, azs=1))
        yield Engines(sb, engine, fleet.targets[0])


def finding(value: Any) -> Program:
    return program(Set("list", MAPPINGS), Find("found", Var("vars.list"), "DeviceName", value),
                   Done({"found": Var("vars.found")}))


def test_find_is_the_first_item_with_the_key_or_null(engines: Engines) -> None:
    first = MAPPINGS[1]

    for value, found in (("/dev/sda1", first), ("/dev/sdz", None),
                         (Var("target.root_device_name"), first)):
        assert engines.local(finding(value)) == {"found": found}
        outcome = engines.stepfunctions(finding(value))
        assert (outcome.status, outcome.output) == ("SUCCEEDED", {"found": found})


def test_find_in_no_list_is_null(engines: Engines) -> None:
    steps = program(Find("found", Var("vars.nothing"), "DeviceName", "/dev/sda1"),
                    Done({"found": Var("vars.found")}))

    assert engines.local(steps) == {"found": None}
    assert engines.stepfunctions(steps).output == {"found": None}


def test_run_step_is_the_step_id(engines: Engines) -> None:
    steps = program(If(((Exists(Var("run.step")), (Done({"step": Var("run.step")}),)),)),
                    Done({"step": "none"}))

    assert engines.local(steps, step_id="backup") == {"step": "backup"}
    assert engines.local(steps, step_id="") == {"step": "none"}
    assert engines.stepfunctions(steps, step_id="backup").output == {"step": "backup"}


def test_an_await_reads_a_list_elements_field_alike_on_moto(engines: Engines) -> None:
    # A path ending in "[0].State" reads as a one-element list on moto: the compiled Await
    # copies the element first (unsafe_paths is empty, checked by Engines.stepfunctions).
    it = Var("it").Attachments.at(0)
    steps = program(Await("volume", "volume", Var("target.root_volume_id"),
                          until=Eq(it.State, "attached"), timeout=60.0,
                          what="attached", fail=((Exists(it, False), "not attached"),)),
                    Set("attachment", Var("vars.volume").Attachments.at(0)),
                    Done({"holder": Var("vars.attachment.InstanceId")}))
    expected = {"holder": engines.target.instance_id}

    assert engines.local(steps) == expected
    outcome = engines.stepfunctions(steps)
    assert (outcome.status, outcome.output) == ("SUCCEEDED", expected)


def attaching(subject: Any = None) -> Program:
    """AttachVolume of ``params.volume_id`` at /dev/sdf, whatever AWS says it is doing."""
    return program(Send("ec2", "AttachVolume", {
        "VolumeId": Var("params.volume_id"), "InstanceId": TARGET_ID, "Device": "/dev/sdf"},
        subject=subject, reconcile_on=("VolumeInUse",)), Done())


def test_a_refused_send_names_its_subject(engines: Engines) -> None:
    # The instance's own root volume: AWS answers VolumeInUse (no reply was lost).
    volume_id = engines.target.root_volume_id
    steps = attaching(Var("params.volume_id"))
    params = {"volume_id": volume_id}

    with pytest.raises(StepFailed) as failed:
        engines.local(steps, params)
    assert str(failed.value).startswith(f"AttachVolume for {volume_id} failed: VolumeInUse: ")
    outcome = engines.stepfunctions(steps, params)
    assert (outcome.status, outcome.error) == ("FAILED", "remediate.StepFailed")
    assert outcome.cause is not None
    assert outcome.cause.startswith(f"AttachVolume for {volume_id} failed: ")


def test_an_error_a_lost_reply_explains_reconciles(engines: Engines) -> None:
    # The first AttachVolume took effect, its reply lost; sent again, it meets VolumeInUse:
    # the program runs again from its start (and, sending it each time, gives up after
    # RECONCILE_LIMIT reconciliations) instead of failing on the error.
    ec2 = engines.sb.client("ec2", REGION, config=NO_RETRIES)
    params = {"volume_id": ec2.create_volume(
        AvailabilityZone=engines.target.availability_zone, Size=8)["VolumeId"]}
    engines.sb.lose_replies("AttachVolume", times=1)

    outcome = engines.stepfunctions(attaching(), params)

    assert (outcome.status, outcome.error) == ("FAILED", "remediate.OutcomeUnknown"), outcome.cause
    assert outcome.cause is not None and "is already attached to an instance" in outcome.cause
    assert engines.sb.api_call_counts()[("ec2", "AttachVolume")] == 1 + 5
    # Locally the program raises OutcomeUnknown (the executor reconciles) when the
    # journal says the reply was lost; otherwise it is the step's failure.
    with pytest.raises(OutcomeUnknown):
        engines.local(attaching(), params, reply_lost=True)
    with pytest.raises(StepFailed):
        engines.local(attaching(), params, reply_lost=False)


def test_a_param_known_only_at_run_time_is_judged_at_run_time(engines: Engines) -> None:
    steps = program(If(((Eq(Var("params.start"), True), (Done({"started": True}),)),)),
                    Done({"started": False}))

    # Bound at export, a template reading a fact is a JSONPath (here: the target's id,
    # a string, not true).
    assert engines.stepfunctions(steps, {"start": Ref("$.target.flag")}).output == {
        "started": False}
    outcome = engines.stepfunctions(steps, {"start": True})
    assert outcome.output == {"started": True}
    fragment = compile_program(AslStep("step", "test.program", {"start": Ref("$.run.go")}),
                               steps)
    choices = json.dumps([s for s in fragment.states.values() if s["Type"] == "Choice"])
    assert "$.run.go" in choices


def test_a_timed_out_await_names_what_it_waited_for(engines: Engines) -> None:
    volume_id = engines.target.root_volume_id
    steps = program(Await("volume", "volume", Var("target.root_volume_id"),
                          until=Eq(Var("it.State"), "available"), timeout=30.0,
                          what=Fmt("volume ", Var("target.root_volume_id"), " available")),
                    Done())

    with pytest.raises(WaitTimeout) as late:
        engines.local(steps)
    assert str(late.value) == f"timed out after 30s waiting for volume {volume_id} available"
    outcome = engines.stepfunctions(steps)
    assert (outcome.status, outcome.error) == ("FAILED", "remediate.WaitTimeout")
    assert outcome.cause is not None
    assert outcome.cause.startswith(f"volume {volume_id} available not reached after 30s; "
                                    'last seen: {"')
