"""ssm.run_command and the script building it shares with rescue.repair."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from remediate.actions.requests import Call, StepFailed
from remediate.actions.ssm import RunCommand, build_script, command_comment
from remediate.language.problems import Problem
from remediate.language.quoting import UnsafeValue
from remediate.sandbox import FleetSpec
from sandbox_actions import CRASHED, REGION, Env, Interleaver, build, ec2_target, launch_instance

pytest_plugins = ["conftest_sandbox_actions"]

NASTY = "it's $(whoami) `date` \"q\" ; rm -rf / # \u2019"


def instances(env: Env, count: int, linux: bool = False) -> list[str]:
    """Healthy instances, Online in SSM (the fleet's targets boot-loop)."""
    setup = build(env, FleetSpec(plain=1, azs=1)).regions[REGION]
    image = setup.rescue_linux_ami if linux else setup.rescue_windows_ami
    return [launch_instance(env, image, next(iter(setup.subnets.values())))
            for _ in range(count)]


def instance(env: Env, linux: bool = False) -> str:
    return instances(env, 1, linux)[0]


def sent(env: Env) -> list[Call]:
    return [c for c in env.runtime.calls if c.operation == "SendCommand"]


def run(env: Env, instance_id: str, params: dict[str, Any], **kwargs: Any) -> Any:
    return env.run("ssm.run_command", env.context(ec2_target(instance_id), **kwargs), params)


def test_commands_run_on_the_target_and_report(action_env: Env) -> None:
    instance_id = instance(action_env)
    outputs = run(action_env, instance_id, {"commands": ["hostname"]})
    assert outputs == {"command_id": outputs["command_id"], "status": "Success", "exit_code": 0,
                       "stdout": "", "stderr": ""}
    [call] = sent(action_env)
    assert call.batch_key == "InstanceIds"
    assert call.params == {
        "InstanceIds": [instance_id],
        "DocumentName": "AWS-RunPowerShellScript",
        "Comment": command_comment("sync-run", "step"),
        "TimeoutSeconds": 600,
        "Parameters": {"commands": ["hostname"], "executionTimeout": ["600"]},
    }


def test_parameters_are_quoted_for_powershell(action_env: Env) -> None:
    instance_id = instance(action_env)
    run(action_env, instance_id, {"commands": ["Write-Output $Name"],
                                  "parameters": {"Name": NASTY, "Count": 3}})
    assert sent(action_env)[0].params["Parameters"]["commands"] == [
        "$Name = 'it''s $(whoami) `date` \"q\" ; rm -rf / # \u2019\u2019'",
        "$Count = '3'",
        "Write-Output $Name",
    ]


def test_parameters_are_quoted_for_sh(action_env: Env) -> None:
    instance_id = instance(action_env, linux=True)
    run(action_env, instance_id, {"document": "AWS-RunShellScript", "commands": ['echo "$NAME"'],
                                  "parameters": {"NAME": NASTY}})
    assert sent(action_env)[0].params["Parameters"]["commands"] == [
        "NAME='it'\"'\"'s $(whoami) `date` \"q\" ; rm -rf / # \u2019'",
        'echo "$NAME"',
    ]


@pytest.mark.parametrize("value", ["two\nlines", "cr\rhere", "nul\x00"])
def test_values_no_quoting_makes_safe_are_refused(action_env: Env, value: str) -> None:
    instance_id = instance(action_env)
    with pytest.raises(StepFailed) as failed:
        run(action_env, instance_id, {"commands": ["x"], "parameters": {"Name": value}})
    assert str(failed.value) == (
        f"parameters: refusing to put {value!r} into a script: it holds a control character "
        "(newline, NUL, ...)")
    assert sent(action_env) == []
    assert RunCommand().validate({"commands": ["x"], "parameters": {"Name": value}}, ".") == [
        Problem(("parameters", "Name"), f"refusing to put {value!r} into a script: it holds a "
                                        "control character (newline, NUL, ...)",
                "no quoting makes a newline or NUL safe in a script: pass one line of text")]


def test_build_script_refuses_bad_variable_names() -> None:
    with pytest.raises(UnsafeValue, match=r"^'A;B' is not a variable name$"):
        build_script("sh", {"A;B": "x"}, [])


def test_templates_inside_commands_are_refused(action_env: Env) -> None:
    message = ("templates are not allowed in commands (found '${{ target.id }}'): pass the value "
               "through parameters, which quotes it, and use the variable in the script")
    params = {"commands": ["ok", "Restart-Computer ${{ target.id }}"]}
    assert RunCommand().validate(params, ".") == [Problem(("commands", 1), message)]
    instance_id = instance(action_env)
    with pytest.raises(StepFailed) as failed:
        run(action_env, instance_id, params)
    assert str(failed.value) == message
    assert RunCommand().validate({"commands": ["x"],
                                  "parameters": {"Id": "${{ target.id }}"}}, ".") == []


def test_commands_or_script_but_not_both(tmp_path: Path) -> None:
    (tmp_path / "s.ps1").write_text("hostname\n")
    assert RunCommand().validate({}, str(tmp_path)) == [
        Problem((), "set commands (a list of lines) or script (a file)")]
    assert RunCommand().validate({"commands": ["x"], "script": "s.ps1"}, str(tmp_path)) == [
        Problem((), "set commands or script, not both")]
    assert RunCommand().validate({"script": "s.ps1"}, str(tmp_path)) == []
    assert RunCommand().validate({"script": "missing.ps1"}, str(tmp_path)) == [
        Problem(("script",),
                f"script file missing.ps1 not found (looked for {tmp_path / 'missing.ps1'})")]
    (tmp_path / "t.ps1").write_text("Stop-Computer ${{ params.host }}\n")
    assert RunCommand().validate({"script": "t.ps1"}, str(tmp_path)) == [
        Problem(("script",), "templates are not allowed in script t.ps1 (found "
                             "'${{ params.host }}'): pass the value through parameters, which "
                             "quotes it, and use the variable in the script")]


def test_a_script_file_runs_after_its_variables(action_env: Env, tmp_path: Path) -> None:
    (tmp_path / "fix.ps1").write_text("\ufeffWrite-Output $Name\r\nexit 0\n", encoding="utf-8")
    instance_id = instance(action_env)
    run(action_env, instance_id, {"script": "fix.ps1", "parameters": {"Name": "a b"}},
        base_dir=str(tmp_path))
    assert sent(action_env)[0].params["Parameters"]["commands"] == [
        "$Name = 'a b'", "Write-Output $Name", "exit 0"]


def test_a_failing_command_fails_the_step_with_its_stderr(action_env: Env) -> None:
    instance_id = instance(action_env)
    # The sandbox runs a script naming C-00000291 and a volume id as the repair.
    failing = {"commands": ["Remove-Item C-00000291*.sys # vol-0000000000000beef"]}
    with pytest.raises(StepFailed) as failed:
        run(action_env, instance_id, failing)
    command_id = sent(action_env)[0]
    assert command_id is not None
    message = str(failed.value)
    assert message.startswith(f"ssm.run_command on {instance_id} failed: SSM command ")
    assert message.endswith(
        f" on {instance_id} ended Failed with exit code 1: Disk for volume vol-0000000000000beef "
        f"not found: the volume is not attached to {instance_id} as a data disk.")

    outputs = run(action_env, instance_id, {**failing, "fail_on_error": False})
    assert (outputs["status"], outputs["exit_code"]) == ("Failed", 1)
    assert outputs["stderr"].startswith("Disk for volume vol-0000000000000beef not found")


def test_an_offline_instance_times_out_delivery(action_env: Env) -> None:
    fleet = build(action_env, FleetSpec(plain=1, azs=1))
    boot_looping = fleet.targets[0].instance_id
    with pytest.raises(StepFailed) as failed:
        run(action_env, boot_looping, {"commands": ["hostname"]})
    assert str(failed.value).startswith(f"ssm.run_command on {boot_looping} failed: SSM command ")
    assert str(failed.value).endswith("with exit code -1: no output")


def test_commands_to_many_targets_can_be_merged(action_env: Env) -> None:
    first, second = instances(action_env, 2)
    for instance_id in (first, second):
        run(action_env, instance_id, {"commands": ["hostname"], "parameters": {"A": "b"}})
    calls = sent(action_env)
    assert [c.params["InstanceIds"] for c in calls] == [[first], [second]]
    same = [{k: v for k, v in c.params.items() if k != "InstanceIds"} for c in calls]
    assert same[0] == same[1]  # only the batch key differs: the executor may merge them
    assert RunCommand.batches == {"ssm:SendCommand": 50}


def test_a_command_still_running_is_waited_for_not_sent_again(action_env: Env) -> None:
    instance_id = instance(action_env)
    ctx = action_env.context(ec2_target(instance_id))
    crashed = Interleaver(action_env.runtime).run(
        {"t": action_env.start("ssm.run_command", ctx, {"commands": ["hostname"]})},
        crash_after={"t": "SendCommand"})
    assert crashed == {"t": CRASHED}
    [first] = sent(action_env)

    resumed = action_env.new_runtime()
    outputs = run(action_env, instance_id, {"commands": ["hostname"]}, runtime=resumed)

    assert [c for c in resumed.calls if c.operation == "SendCommand"] == []
    assert outputs["status"] == "Success"
    listed = action_env.client("ssm").list_command_invocations(InstanceId=instance_id)
    assert [i["CommandId"] for i in listed["CommandInvocations"]] == [outputs["command_id"]]
    assert first.params["Comment"] == command_comment("sync-run", "step")


def test_a_step_the_journal_shows_never_sent_does_not_look_for_its_command(
        action_env: Env) -> None:
    """A first attempt sends at once: listing a busy instance's invocations (pages of 50)
    would be calls wasted. Once SendCommand is journaled, a retry looks first."""
    instance_id = instance(action_env)
    journaled: list[str] = []

    first = run(action_env, instance_id, {"commands": ["hostname"]},
                sent_before=lambda operation: operation in journaled)
    lookups = [c for c in action_env.runtime.calls if c.operation == "ListCommandInvocations"]
    journaled.append("SendCommand")
    again = run(action_env, instance_id, {"commands": ["hostname"]},
                sent_before=lambda operation: operation in journaled)

    assert lookups == [] and first["status"] == "Success"
    assert [c.operation for c in action_env.runtime.calls].count("ListCommandInvocations") == 1
    assert again["command_id"] != first["command_id"]  # the first one had finished


def test_a_finished_command_is_run_again(action_env: Env) -> None:
    instance_id = instance(action_env)
    first = run(action_env, instance_id, {"commands": ["hostname"]})
    second = run(action_env, instance_id, {"commands": ["hostname"]})
    assert first["command_id"] != second["command_id"]


def test_comments_are_short_and_distinct() -> None:
    comment = command_comment("r" * 200, "step", "vol-0123456789abcdef0")
    assert len(comment) <= 100
    assert comment != command_comment("r" * 200, "step", "vol-0123456789abcdef1")
    assert command_comment("run", "step") != command_comment("run", "other")


def test_plan_names_the_instance_and_what_runs(action_env: Env) -> None:
    ctx = action_env.context(ec2_target("i-0123456789abcdef0"))
    plan = RunCommand().plan(ctx, {"document": "AWS-RunShellScript", "commands": ["a", "b"]})
    assert plan.note == "run 2 command line(s) with AWS-RunShellScript on i-0123456789abcdef0"
    assert [(c.api, c.mutating) for c in plan.calls] == [("ssm:SendCommand", True)]
    plan = RunCommand().plan(ctx, {"document": "AWS-RunPowerShellScript", "script": "x.ps1",
                                   "instance_id": "${{ steps.a.outputs.rescue_instance_id }}"})
    assert plan.note == ("run script x.ps1 with AWS-RunPowerShellScript on "
                         "${{ steps.a.outputs.rescue_instance_id }}")


def test_a_script_turned_into_a_link_after_validate_is_not_sent(
        action_env: Env, tmp_path: Path) -> None:
    """The step applies validate's rules again: the file may change in between."""
    (tmp_path / "secret").write_text("aws_secret_access_key=x\n")
    (tmp_path / "playbooks").mkdir()
    os.symlink(tmp_path / "secret", tmp_path / "playbooks" / "fix.ps1")
    instance_id = instance(action_env)

    with pytest.raises(StepFailed) as failed:
        run(action_env, instance_id, {"script": "fix.ps1"}, base_dir=str(tmp_path / "playbooks"))

    assert str(failed.value) == (f"script fix.ps1 resolves through a symbolic link to "
                                 f"{tmp_path / 'secret'}, outside the playbook's folder")
    assert sent(action_env) == []
