"""`remediate sandbox serve`: the sandbox fleet as a moto server for rehearsals."""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

import click

from remediate.cli.fleets import demo_spec
from remediate.cli.options import CLOCK_FACTOR

if TYPE_CHECKING:
    from remediate.sandbox.throttling import ThrottlePolicy

# remediate.sandbox.throttling.MODELS, named here so that `remediate --help` does not
# import moto (the sandbox is an extra); a test checks the two agree.
THROTTLE_MODELS: Final = ("documented", "shared-category")

# Any role ARN does in the sandbox (moto does not check it exists).
SANDBOX_ROLE = "arn:aws:iam::123456789012:role/remediate-sfn"


def _probability(_ctx: click.Context, _param: click.Parameter,
                 value: float | None) -> float | None:
    # FloatRange lets nan through (every comparison with it is false).
    if value is not None and math.isnan(value):
        raise click.BadParameter(f"{value} is not in the range 0<x<=1.")
    return value


def throttle_policy(model: str, neighbour: float) -> ThrottlePolicy | None:
    """``--throttle`` and ``--neighbour`` as a policy (None: ``off``)."""
    from remediate.sandbox.throttling import Neighbour, ThrottlePolicy

    if model == "off":
        if neighbour:
            raise click.BadParameter("needs --throttle documented or shared-category",
                                     param_hint="--neighbour")
        return None
    return ThrottlePolicy.aws_defaults(
        model=model, neighbour=Neighbour(neighbour) if neighbour else None)


@click.group()
def sandbox() -> None:
    """The moto-backed sandbox: a realistic broken fleet, no AWS account needed."""


@sandbox.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="TCP port on 127.0.0.1 (0: any free port).")
@click.option("--fleet", "plain", type=click.IntRange(min=0), default=20, show_default=True,
              help="Plain broken Windows instances.")
@click.option("--workspaces", type=click.IntRange(min=0), default=6, show_default=True,
              help="Broken WorkSpaces.")
@click.option("--pitfalls/--no-pitfalls", default=True, show_default=True,
              help="Add one instance of each pitfall (instance store, Spot, stop protection, "
                   "bad KMS key, Marketplace, hibernation).")
@click.option("--clock-factor", type=CLOCK_FACTOR, default=60.0,
              show_default=True,
              help="Simulated seconds per real second (60: a 2-minute stop takes 2 s).")
@click.option("--stepfunctions", is_flag=True,
              help="Execute Step Functions state machines too (moto's interpreter, on the "
                   "sandbox's clock): rehearse `run --engine stepfunctions`.")
@click.option("--lose-replies", "lose_replies", metavar="PROBABILITY",
              type=click.FloatRange(min=0, max=1, min_open=True), callback=_probability,
              help="Each mutating call takes effect, then its reply is lost (a 500 "
                   "InternalError) with this probability: rehearse AWS losing replies.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of --lose-replies: the same seed loses the same replies.")
@click.option("--throttle", type=click.Choice(["off", *THROTTLE_MODELS]), default="off",
              show_default=True,
              help="Throttle EC2 like AWS: `documented` (a bucket per API, as AWS's page "
                   "says) or `shared-category` (one bucket per category, the older reading).")
@click.option("--neighbour", metavar="SHARE", type=click.FloatRange(min=0, max=1, max_open=True),
              default=0.0, show_default=True,
              help="With --throttle: another tool in the account spends this share of every "
                   "EC2 bucket's refill (e.g. 0.3).")
@click.option("--dhmc/--no-dhmc", default=True, show_default=True,
              help="Default Host Management Configuration on in the fleet's Region: rescue "
                   "instances without an instance profile register with SSM.")
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint and fleet as JSON.")
def serve(port: int, plain: int, workspaces: int, pitfalls: bool, clock_factor: float,
          stepfunctions: bool, lose_replies: float | None, seed: int, throttle: str,
          neighbour: float, dhmc: bool, as_json: bool) -> int:
    """Serve the sandbox on 127.0.0.1 until Ctrl-C.

    Rehearse a playbook from another shell with the printed AWS_ENDPOINT_URL. A port
    already in use is an error (exit 1).
    """
    import logging

    from remediate.sandbox.server import serve as serve_sandbox

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    from remediate.sandbox.state import LostReplies

    spec = demo_spec(plain=plain, workspaces=workspaces, pitfalls=pitfalls, dhmc=dhmc)
    out = None if as_json else _Announcer(clock_factor)
    lost = None if lose_replies is None else LostReplies(lose_replies, seed)
    return serve_sandbox(port, spec, clock_factor=clock_factor, out=out,
                         stepfunctions=stepfunctions, lost_replies=lost,
                         throttle=throttle_policy(throttle, neighbour))


class _Announcer(io.StringIO):
    """Turns the server's one JSON line into something a person reads."""

    def __init__(self, clock_factor: float) -> None:
        super().__init__()
        self.clock_factor = clock_factor

    def write(self, text: str) -> int:
        text = text.strip()
        if not text:
            return 0
        data: dict[str, Any] = json.loads(text)
        fleet = data["fleet"]
        kinds = Counter(t["kind"] for t in fleet["targets"])
        region = next(iter(fleet["regions"]), "us-east-1")
        tag_key, tag_value = fleet["tag"]
        click.echo(f"sandbox ready at {data['endpoint']}\n")
        click.echo("in another shell:")
        click.echo(f"  export AWS_ENDPOINT_URL={data['endpoint']} AWS_ACCESS_KEY_ID=testing "
                   f"AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={region}")
        # The tool's own waits (polls, backoff, pacing) must run as fast as the sandbox's
        # state changes, or a rehearsal polls in real time: the hidden --clock-factor.
        factor = f"--clock-factor {self.clock_factor:g}"
        click.echo(f"  remediate plan playbooks/ec2-offline-repair.yaml {factor}")
        click.echo(f"  remediate run playbooks/ec2-reboot-first.yaml {factor}")
        if data["stepfunctions"]:
            click.echo("  remediate run playbooks/ec2-reboot-first.yaml --engine stepfunctions "
                       f"--role-arn {SANDBOX_ROLE} {factor}")
        click.echo("")
        click.echo(f"fleet (tagged {tag_key}={tag_value}):")
        for kind, count in sorted(kinds.items()):
            click.echo(f"  {count:5d} EC2 instances: {kind}")
        click.echo(f"  {len(fleet['workspaces']):5d} WorkSpaces")
        throttle = data.get("throttle")
        if throttle:
            neighbour = (f", a neighbour spending {throttle['neighbour']:.0%} of each bucket"
                         if throttle["neighbour"] else "")
            click.echo(f"\nthrottling: AWS's EC2 buckets, {throttle['model']} model{neighbour}")
        lost = data.get("lost_replies")
        if lost:
            click.echo(f"\nlost replies: each mutating call takes effect, then answers 500 "
                       f"InternalError with probability {lost['probability']:g} "
                       f"(seed {lost['seed']})")
        click.echo("\nCtrl-C stops the sandbox.")
        return len(text)
