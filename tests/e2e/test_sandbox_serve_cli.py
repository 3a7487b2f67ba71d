"""`remediate sandbox serve`, and the plain `remediate` command against a sandbox server."""

from __future__ import annotations

import json
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cli_support import OFFLINE_REPAIR, REBOOT_FIRST, ROOT, backups, root_states
from e2e_support import Lines, SandboxServer, remediate, sandbox_env, stop

SERVE = [sys.executable, "-m", "remediate", "sandbox", "serve", "--port", "0", "--fleet", "2",
         "--workspaces", "0", "--no-pitfalls", "--clock-factor", "60"]


@pytest.mark.slow
def test_sandbox_serve_prints_its_endpoint_and_a_plan_against_it_works(
        tmp_path: Path) -> None:
    with (tmp_path / "serve.err").open("w") as err:
        serve = subprocess.Popen(SERVE, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=err, text=True)
    try:
        out = Lines(serve)
        first = out.next(60, "`sandbox serve` to announce itself")
        assert first.startswith("sandbox ready at http://127.0.0.1:")
        endpoint = first.split()[-1]
        lines: list[str] = []
        while not lines or lines[-1] != "Ctrl-C stops the sandbox.":
            lines.append(out.next(10, "the rest of the announcement"))
        assert lines[:3] == [
            "", "in another shell:",
            f"  export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=testing "
            "AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1"]
        suggested = lines[3].strip()
        # The playbook's default rescue image (resolve:ssm:) resolves in the sandbox too.
        assert suggested == "remediate plan playbooks/ec2-offline-repair.yaml --clock-factor 60"
        assert lines[4].strip() == "remediate run playbooks/ec2-reboot-first.yaml --clock-factor 60"
        assert "fleet (tagged incident=crowdstrike-2024-07-19):" in lines
        assert "      2 EC2 instances: plain" in lines
        assert "      4 EC2 instances: reboot_fixable" in lines

        # The suggested command works as printed, from the repository's root.
        offline = subprocess.run(
            [sys.executable, "-m", "remediate", *shlex.split(suggested)[1:], "--format", "json"],
            env=sandbox_env(endpoint, tmp_path, 60.0), cwd=ROOT, capture_output=True,
            text=True, timeout=120, check=False)
        assert offline.returncode == 0, offline.stderr
        planned = json.loads(offline.stdout)["targets"]
        assert [t["status"] for t in planned] == ["planned"] * 6
        assert all(re.fullmatch(r"ami-[0-9a-f]{17}", t["facts"]["rescue_image_id"])
                   for t in planned)

        plan = remediate(["plan", REBOOT_FIRST, "--format", "json"],
                         sandbox_env(endpoint, tmp_path, 60.0), tmp_path / "plan.log",
                         scaled=False)
        assert plan.finish(60) == 0, plan.stderr()
        report = json.loads(plan.stdout())
        assert report["dry_run"] is True
        assert [t["status"] for t in report["targets"]] == ["planned"] * 6

        serve.send_signal(signal.SIGINT)
        assert serve.wait(30) == 0
    finally:
        stop(serve)


@pytest.mark.slow
def test_run_without_yes_and_without_a_terminal_refuses_and_changes_nothing(
        sandbox_server: Callable[..., SandboxServer], tmp_path: Path) -> None:
    server = sandbox_server(fleet=2)
    ec2 = server.client("ec2")
    before = root_states(ec2, server.instance_ids)

    run = remediate(["run", OFFLINE_REPAIR, *server.rescue_param, "--journal",
                     str(tmp_path / "j.sqlite")], server.env(tmp_path), tmp_path / "run.log",
                    scaled=False)

    assert run.finish(60) == 1
    assert run.stderr() == (
        "error: refusing to change anything without confirmation: stdin is not a terminal; "
        "review `remediate plan` and pass --yes\n")
    assert root_states(ec2, server.instance_ids) == before
    assert all(backups(ec2, i) == [] for i in server.instance_ids)


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "remediate", "sandbox", "serve", "--fleet", "2"],
    [sys.executable, "-m", "remediate.sandbox", "--fleet", "2"],
], ids=["remediate-sandbox-serve", "python-m-remediate.sandbox"])
def test_a_port_in_use_is_one_line_and_exit_1(command: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        done = subprocess.run([*command, "--port", str(port)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60, check=False)

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"error: port {port} on 127.0.0.1 is in use: stop what listens "
                           "there, or pick another port (--port 0: any free one)\n")
