"""`remediate list-actions` and `remediate iam-policy`: views of the action registry."""

from __future__ import annotations

import json
from typing import Any

import click

from remediate.actions import registry
from remediate.actions.contract import Action
from remediate.cli.alarms import policy_alarm_option
from remediate.cli.playbook_arg import load_or_fail
from remediate.errors import UserError
from remediate.kinds import KINDS
from remediate.permissions import policy_document, size_warning, unscoped_warning


def describe_action(action: Action) -> dict[str, Any]:
    return {
        "name": action.name,
        "summary": action.summary,
        "kinds": sorted(action.kinds),
        "mutating": action.mutating,
        "parameters": {
            name: {"expected": f.node.expected(), "required": f.required,
                   "description": f.description or f.node.description}
            for name, f in action.params.fields.items()
        },
        "outputs": dict(action.outputs),
        "permissions": list(action.permissions),
        "scoped_permissions": [scoped.describe() for scoped in action.scoped_permissions],
        "batches": dict(action.batches),
        "start_states": sorted(action.start_states),
        "risks": sorted(action.risks),
        "destructive": action.destructive,
        "verify": action.verify,
        "undo": action.undo,
    }


def _text(action: Action) -> str:
    info = describe_action(action)
    lines = [f"{info['name']}  ({'mutating' if info['mutating'] else 'read-only'}; "
             f"{', '.join(info['kinds'])})", f"  {info['summary']}"]
    for name, p in info["parameters"].items():
        req = "required" if p["required"] else "optional"
        desc = f": {p['description']}" if p["description"] else ""
        lines.append(f"    with.{name} ({req}, {p['expected']}){desc}")
    if info["outputs"]:
        lines.append("    outputs: " + ", ".join(info["outputs"]))
    if info["permissions"]:
        lines.append("    permissions: " + ", ".join(info["permissions"]))
    lines += [f"      scoped: {scoped.text()}" for scoped in action.scoped_permissions]
    if info["batches"]:
        lines.append("    batches: " + ", ".join(f"{api} ({n} a call)"
                                                 for api, n in info["batches"].items()))
    if info["risks"]:
        lines.append("    risks: " + ", ".join(info["risks"]))
    if info["destructive"]:
        lines.append(f"    destructive: needs --accept {info['destructive']}")
    if info["undo"]:
        lines.append(f"    undone by: {info['undo']}")
    return "\n".join(lines)


@click.command("list-actions")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--facts", is_flag=True, help="List the target facts playbooks can read instead.")
def list_actions(fmt: str, facts: bool) -> int:
    """The actions playbooks can use: parameters, permissions, whether they mutate."""
    if facts:
        data: Any = {kind.name: dict(kind.facts) for kind in KINDS.values()}
        if fmt == "json":
            click.echo(json.dumps(data, indent=2))
        else:
            for kind, names in data.items():
                click.echo(f"{kind}:")
                for name, desc in names.items():
                    click.echo(f"  target.{name}: {desc}")
        return 0
    actions = list(registry.actions())
    if fmt == "json":
        click.echo(json.dumps([describe_action(a) for a in actions], indent=2))
    else:
        click.echo("\n\n".join(_text(a) for a in actions))
    return 0


@click.command("iam-policy")
@click.argument("playbook", type=click.Path())
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="Scope the policy to targets with this tag, as `run --tag` selects them "
                   "(repeatable; replaces the playbook's value for that key).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A playbook parameter as the run will be given it (repeatable): e.g. "
                   "rescue_instance_profile, which needs iam:PassRole.")
@policy_alarm_option
def iam_policy(playbook: str, tags: tuple[str, ...], params: tuple[str, ...],
               stop_on_alarm: tuple[str, ...]) -> int:
    """The least-privilege IAM policy PLAYBOOK needs, from its actions' contracts.

    Read-only calls are on *; the calls on the targets only on instances (or WorkSpaces)
    carrying the tags the playbook and --tag select by; the rest scoped to the rescue
    instances and to what remediate tags (tags, ARNs, condition keys); it ends with a
    Deny of deleting volumes, snapshots and WorkSpaces. A playbook selecting by no tag
    gets a warning on stderr: its policy allows those calls on any target. With
    --stop-on-alarm (as the run will be given), reading CloudWatch alarms too."""
    from remediate.cli.options import parse_params
    from remediate.discovery import Overrides, parse_pairs, select
    from remediate.language.loader import bind_params

    loaded = load_or_fail(playbook)
    selector = select(loaded.targets, Overrides(tags=parse_pairs(tags, "--tag", split=False)))
    bound, errors = bind_params(loaded, parse_params(params))
    if errors:
        raise UserError("; ".join(errors))
    policy = policy_document(loaded, selector, stop_on_alarm=bool(stop_on_alarm),
                             params=bound)
    for warning in (unscoped_warning(loaded, selector), size_warning(policy)):
        if warning:
            click.echo(f"warning: {warning}", err=True)
    click.echo(json.dumps(policy, indent=2))
    return 0
