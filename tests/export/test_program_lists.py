"""Program pieces over lists (remediate.actions.list_flows) and the values they need (Item,
Put, Sha256), and Get's error handlers: the local engine and moto's Step Functions give
the same result for the same input."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
from sfn_support import NO_RETRIES, REGION, ROLE

from remediate.actions import interpret
from remediate.actions.contract import StepContext, Target
from remediate.actions.list_flows import first, joined, tag, tag_mapping
from remediate.actions.program import (
    ANY_ERROR,
    Done,
    Fmt,
    Get,
    Item,
    OnError,
    Program,
    Same,
    Set,
    Sha256,
    Var,
    program,
)
from remediate.actions.requests import AwsError, Call
from remediate.clock import VirtualClock
from remediate.export.fragment import AslStep
from remediate.export.moto_engine import MotoStepFunctions
from remediate.export.program_asl import compile_program
from remediate.sandbox import Durations, Sandbox

TARGET = Var("target")
TAGS = {"Tags": [{"Key": "incident", "Value": "crowdstrike"}, {"Key": "Name", "Value": "web-1"},
                 {"Key": "remediate:root-device", "Value": "/dev/sda1"}]}
MAPPINGS = {"RootDeviceName": "/dev/sda1", "BlockDeviceMappings": [
    {"DeviceName": "/dev/xvdf", "Ebs": {"VolumeId": "vol-data"}},
    {"DeviceName": "/dev/sda1", "Ebs": {"VolumeId": "vol-root"}}]}


def lists_program(second: bool = True) -> Program:
    """``second``: also Item 1 of the devices (Step Functions fails past a list's end)."""
    record = Var("target.record")
    return program(
        *tag_mapping("tags", record),
        *tag("device", record, "remediate:root-device"),
        *tag("missing", record, "no-such-key"),
        *first("root", record.BlockDeviceMappings,
               lambda m: Same(m.DeviceName, record.RootDeviceName)),
        *joined("names", record.BlockDeviceMappings, lambda m: m.Ebs.VolumeId),
        *joined("none", Var("target.record.Nothing"), lambda m: m),
        Set("second_item", Item(record.BlockDeviceMappings, 1) if second else None),
        Set("second", Var("vars.second_item.DeviceName")),
        Set("root_volume", Var("vars.root.Ebs.VolumeId")),  # null when there is no root
        Set("token", Sha256(Fmt(Var("run.id"), "/", Var("target.id"), "/", Var("run.step")))),
        Done({"tags": Var("vars.tags"), "device": Var("vars.device"),
              "missing": Var("vars.missing"), "root": Var("vars.root_volume"),
              "names": Var("vars.names"), "none": Var("vars.none"),
              "second": Var("vars.second"), "token": Var("vars.token")}))


class _NoCalls:
    clock: Any = None

    def open_gate(self, key: str) -> None:
        raise AssertionError("no gates here")

    def service(self, cls: type[Any]) -> Any:
        raise AssertionError("no run services here")


def run_locally(prog: Program, record: Mapping[str, Any], answers: Any = None) -> Any:
    """Interpret ``prog`` for target i-1 whose facts hold ``record``; ``answers``: what
    each call returns (an AwsError is raised into the program)."""
    ctx = StepContext("run-1", Target("ec2-instance", "i-1", REGION), {"record": record},
                      _NoCalls(), step_id="lists")
    flow = interpret.run(prog, ctx, {})
    try:
        request = next(flow)
        while True:
            assert isinstance(request, Call), request
            answer = answers(request) if answers else {}
            request = flow.throw(answer) if isinstance(answer, AwsError) else flow.send(answer)
    except StopIteration as stop:
        return stop.value


def run_on_moto(prog: Program, record: Mapping[str, Any],
                prepare: Any = None) -> tuple[str, Any]:
    """``prog`` compiled as step ``lists`` and run alone by moto; (status, output or
    cause)."""
    fragment = compile_program(AslStep("lists", "test.lists"), prog)
    definition = {"StartAt": fragment.start, "States": fragment.states}
    document = {"target": {"id": "i-1", "region": REGION, "account": "default",
                           "record": record}, "run": {"id": "run-1"}}
    clock = VirtualClock()
    with MotoStepFunctions(clock) as engine, Sandbox(clock=clock, durations=Durations()) as sb:
        if prepare:
            prepare(sb)
        sfn = sb.client("stepfunctions", REGION, NO_RETRIES)
        machine = sfn.create_state_machine(name="lists", definition=json.dumps(definition),
                                           roleArn=ROLE)["stateMachineArn"]
        arn = sfn.start_execution(stateMachineArn=machine, name="lists-1",
                                  input=json.dumps(document))["executionArn"]
        assert engine.join(timeout=300)
        found = sfn.describe_execution(executionArn=arn)
    if found["status"] == "SUCCEEDED":
        return found["status"], json.loads(found["output"])
    return found["status"], found.get("cause")


def test_lists_read_alike_on_both_engines() -> None:
    record = {**TAGS, **MAPPINGS}
    local = run_locally(lists_program(), record)

    assert local == {
        "tags": {"incident": "crowdstrike", "Name": "web-1",
                 "remediate:root-device": "/dev/sda1"},
        "device": "/dev/sda1", "missing": None, "root": "vol-root",
        "names": "vol-data, vol-root", "none": "", "second": "/dev/sda1",
        "token": hashlib.sha256(b"run-1/i-1/lists").hexdigest()}
    assert run_on_moto(lists_program(), record) == ("SUCCEEDED", local)


def test_a_record_without_tags_or_devices_reads_as_empty() -> None:
    bare = {"RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []}
    local = run_locally(lists_program(second=False), bare)

    assert {k: local[k] for k in ("tags", "device", "root", "names")} == {
        "tags": {}, "device": None, "root": None, "names": ""}
    assert run_on_moto(lists_program(second=False), bare) == ("SUCCEEDED", local)


def denied_or_missing() -> Program:
    """DescribeKey of a key that does not exist, then of one the caller may not read."""
    def describe(into: str, key: str) -> Any:
        return Get(into, "kms", "DescribeKey", {"KeyId": key},
                   pick={"state": "KeyMetadata.KeyState"},
                   on_error=(OnError(("NotFoundException",), (Set(f"{into}_seen", "gone"),)),
                             OnError((ANY_ERROR,), (Set(f"{into}_seen", "unknown"),))))

    return program(describe("one", "alias/no-such-key"), describe("two", "alias/denied"),
                   Done({"one": Var("vars.one_seen"), "two": Var("vars.two_seen")}))


def test_get_handlers_take_the_codes_they_name_and_any_error() -> None:
    def answers(call: Call) -> Any:
        code = "NotFoundException" if call.params["KeyId"] == "alias/no-such-key" else \
            "AccessDeniedException"
        return AwsError(code, "no", "DescribeKey")

    def deny(sb: Sandbox) -> None:
        sb.fail("DescribeKey", "AccessDeniedException", "no")

    assert run_locally(denied_or_missing(), {}, answers) == {"one": "gone", "two": "unknown"}
    # moto's KMS knows neither key; then the same, every call denied.
    assert run_on_moto(denied_or_missing(), {}) == ("SUCCEEDED", {"one": "gone",
                                                                  "two": "gone"})
    assert run_on_moto(denied_or_missing(), {}, deny) == ("SUCCEEDED", {"one": "unknown",
                                                                        "two": "unknown"})


def test_an_error_no_handler_takes_fails_the_step_naming_the_call() -> None:
    prog = program(Get("k", "kms", "DescribeKey", {"KeyId": "alias/x"},
                       pick={"state": "KeyMetadata.KeyState"},
                       on_error=(OnError(("NotFoundException",), ()),)),
                   Done({}))

    with pytest.raises(Exception) as failed:
        run_locally(prog, {}, lambda call: AwsError("AccessDeniedException", "no",
                                                    "DescribeKey"))
    assert str(failed.value) == "DescribeKey failed: AccessDeniedException: no"

    status, cause = run_on_moto(prog, {}, lambda sb: sb.fail("DescribeKey",
                                                             "AccessDeniedException", "no"))
    assert status == "FAILED" and cause.startswith("DescribeKey failed: no")
