"""What the rescue and SSM ports added to the program vocabulary and its compiler: Natives
whose Step Functions counterpart is program steps, ``Accepted``, ``run.step``, ``token``,
``Script``, paths moto would misread, and text an intrinsic function would mangle.
(The exported definitions' own rules, unique names and no unreachable state, are checked
in test_definition_rules.py.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from remediate.actions.contract import StepContext, Target
from remediate.actions.interpret import evaluate, run
from remediate.actions.program import (
    Accepted,
    Await,
    Done,
    Eq,
    Fail,
    Fmt,
    If,
    Native,
    Same,
    Script,
    Send,
    Set,
    Var,
    program,
    token,
)
from remediate.actions.requests import StepFailed
from remediate.clock import VirtualClock
from remediate.export import NotExportable
from remediate.export.compiler import unsafe_paths
from remediate.export.fragment import AslStep
from remediate.export.program_asl import compile_program

STEP = AslStep("fix", "test.action", base_dir=".")
SCOPE = {"target": {"id": "i-1"}, "run": {"id": "run-1", "step": "fix", "base_dir": "."},
         "vars": {}}


class _Runtime:
    clock = VirtualClock()

    def open_gate(self, key: str) -> None:
        raise AssertionError(key)

    def service(self, cls: type[Any]) -> Any:
        raise AssertionError(cls)


def ctx(**kwargs: Any) -> StepContext:
    return StepContext(run_id="run-1", target=Target("ec2-instance", "i-1", "us-east-1"),
                       facts={}, runtime=_Runtime(), step_id="fix", **kwargs)


def drive(steps: Any, context: StepContext) -> Mapping[str, Any]:
    """Run a program that makes no requests; its outputs."""
    gen = run(steps, context, {})
    try:
        request = next(gen)
    except StopIteration as stop:
        return dict(stop.value)
    raise AssertionError(f"unexpected request {request}")


def states(steps: Any, step: AslStep = STEP) -> dict[str, Any]:
    return compile_program(step, steps).states


# ---- Natives with a counterpart ----------------------------------------------------------


def _local(ctx: StepContext, params: Mapping[str, Any], scope: Any) -> Any:
    return {"where": "here"}
    yield  # pragma: no cover


NATIVE = Native("where", into="n", local=_local, asl=None, why="a test",
                counterpart=(Set("n", {"where": "there"}),))


def test_a_natives_counterpart_is_compiled_in_its_place_and_never_run_locally() -> None:
    steps = program(NATIVE, Done({"where": Var("vars.n.where")}))

    assert drive(steps, ctx()) == {"where": "here"}
    compiled = states(steps)
    assert compiled["fix.p.0.sfn.0"] == {"Type": "Pass", "Parameters": {"v": {"where": "there"}},
                                         "ResultPath": "$.r.n", "Next": "fix.p.1"}
    # What the counterpart stored is read where the program reads the Native's outputs.
    assert compiled["fix.p.1"]["Parameters"] == {"where.$": "$.r.n.v.where"}


def test_a_native_has_asl_or_a_counterpart() -> None:
    with pytest.raises(ValueError, match="give asl or counterpart, not both"):
        Native("x", into="x", local=_local, asl=None, why="")


# ---- Accepted, run.step, token ---------------------------------------------------------------


def test_accepted_is_judged_locally_and_decided_at_export() -> None:
    steps = program(If(((Accepted("same-ami-rescue"), (Done({"go": True}),)),)),
                    Done({"go": False}))

    assert drive(steps, ctx()) == {"go": False}
    assert drive(steps, ctx(accepted=frozenset({"same-ami-rescue"}))) == {"go": True}
    refused, accepted = states(steps), states(steps, AslStep(
        "fix", "test.action", accepted=frozenset({"same-ami-rescue"})))
    assert refused["fix.p.1"]["Parameters"] == {"go": False}
    assert "fix.p.1" not in accepted  # pruned: never reached
    assert accepted["fix.p.0.case0.0"]["Parameters"] == {"go": True}


def test_the_step_id_is_known_on_both_engines() -> None:
    steps = program(Done({"comment": Fmt("remediate ", Var("run.step"), " ", Var("target.id"))}))

    assert drive(steps, ctx()) == {"comment": "remediate fix i-1"}
    assert states(steps)["fix.p.0"]["Parameters"] == {
        "comment.$": "States.Format('remediate fix {}', $.target.id)"}


def test_a_token_is_new_each_time_it_is_made_and_fits_a_client_token() -> None:
    made = token(Var("run.id"), Var("target.id"))
    first, second = evaluate(made, SCOPE), evaluate(made, SCOPE)

    assert first != second and re.fullmatch(r"[0-9a-f]{64}", first)
    compiled = states(program(Done({"token": made})))["fix.p.0"]["Parameters"]
    assert compiled == {"token.$": "States.Hash(States.Format('{}:{}:{}', $.run.id, $.target.id, "
                                   "$$.State.EnteredTime), 'SHA-256')"}


# ---- Script -----------------------------------------------------------------------------------


def test_a_script_quotes_its_variables_on_both_engines(tmp_path: Path) -> None:
    (tmp_path / "fix.ps1").write_text("Write-Output {$Id}\n")
    script = Script("powershell", {"Id": Var("target.id"), "Who": "it's"}, file="fix.ps1",
                    plain=frozenset({"Id"}))
    scope = {**SCOPE, "run": {"id": "run-1", "step": "fix", "base_dir": str(tmp_path)}}

    assert evaluate(script, scope) == ["$Id = 'i-1'", "$Who = 'it''s'", "Write-Output {$Id}"]
    compiled = states(program(Set("lines", script)), AslStep("fix", "t", base_dir=str(tmp_path)))
    # The quotes and braces are carried as data, so the intrinsic cannot alter them.
    assert compiled["fix.p.0"]["Parameters"] == {"v.$": (
        "States.Array(States.Format('$Id = {}{}{}', $.r.lit.t0, $.target.id, $.r.lit.t0), "
        "$.r.lit.t1, $.r.lit.t2)")}
    assert compiled["fix.p.text"]["Result"] == {
        "t0": "'", "t1": "$Who = 'it''s'", "t2": "Write-Output {$Id}"}


def test_a_script_value_no_quoting_makes_safe_fails_the_step() -> None:
    script = Script("sh", {"A": "two\nlines"}, lines=("echo $A",))

    with pytest.raises(StepFailed, match=r"^parameters: refusing to put 'two\\nlines' into a "):
        evaluate(script, SCOPE)
    with pytest.raises(NotExportable, match=r"parameters: refusing to put"):
        states(program(Set("lines", script)))


def test_a_script_value_known_only_at_run_time_exports_only_if_plain() -> None:
    script = Script("sh", {"A": Var("target.id")}, lines=("echo $A",))

    with pytest.raises(NotExportable) as raised:
        states(program(Set("lines", script)))
    assert str(raised.value).endswith(
        "the script's variable A is only known at run time, and Step Functions cannot quote "
        "a value for a shell: give it a literal value")


def test_a_missing_script_file_does_not_export(tmp_path: Path) -> None:
    script = Script("sh", {}, file="gone.sh")
    with pytest.raises(NotExportable, match=r"script file gone\.sh not found"):
        states(program(Set("lines", script)), AslStep("fix", "t", base_dir=str(tmp_path)))


# ---- what moto and AWS read alike ----------------------------------------------------------------


def test_an_await_reading_an_element_of_its_record_reads_a_copy() -> None:
    it = Var("it").Attachments.at(0)
    steps = program(Await("vol", "volume", "vol-1", until=Same(it.InstanceId, Var("target.id")),
                          timeout=60, what="attached",
                          fail=((Eq(it.State, "busy"), Fmt("it is ", it.State)),)),
                    Done())
    compiled = states(steps)

    assert list(unsafe_paths(compiled)) == []
    check = compiled["fix.p.0.check"]["Choices"]
    assert check[0]["And"][2] == {"Variable": "$.r.vol_copy0.e.InstanceId",
                                  "StringEqualsPath": "$.target.id"}
    # Each poll copies the element (null when the record has none) before it is judged.
    assert compiled["fix.p.0.found"]["Next"] == compiled["fix.p.0.missing"]["Next"] == (
        "fix.p.0.copy0.has")
    assert compiled["fix.p.0.copy0.has"]["Choices"] == [
        {"Variable": "$.r.vol.v.Attachments[0]", "IsPresent": True, "Next": "fix.p.0.copy0"}]
    assert compiled["fix.p.0.copy0"]["Parameters"] == {"e.$": "$.r.vol.v.Attachments[0]"}
    assert compiled["fix.p.0.copy0.none"]["Result"] == {"e": None}


def test_same_with_one_side_known_at_export_compares_with_it() -> None:
    steps = program(If(((Same(Var("target.image_id"), Var("params.image")), (Fail("same"),)),)),
                    Done())
    compiled = states(steps, AslStep("fix", "t", params={"image": "ami-1"}))

    assert compiled["fix.p.0"]["Choices"][0]["And"][1] == {"And": [
        {"Variable": "$.target.image_id", "IsString": True},
        {"Variable": "$.target.image_id", "StringEquals": "ami-1"}]}


def test_a_send_of_text_an_intrinsic_would_alter_carries_it_as_data() -> None:
    steps = program(Send("ssm", "SendCommand", {"InstanceIds": [Var("target.id")], "Parameters": {
        "commands": ["if ($x) { 'yes' }", Fmt("echo '", Var("target.id"), "'")]}}), Done())
    compiled = states(steps)
    send = next(state for state in compiled.values() if state.get("Type") == "Task")

    assert send["Parameters"]["Parameters"] == {"commands.$": (
        "States.Array($.r.lit.t1, States.Format('echo {}{}{}', $.r.lit.t0, $.target.id, "
        "$.r.lit.t0))")}
    assert compiled["fix.p.text"]["Result"] == {"t0": "'", "t1": "if ($x) { 'yes' }"}
    assert (compiled["fix.p.start"]["Next"], compiled["fix.p.text"]["Next"]) == (
        "fix.p.text", "fix.p.begin")
