"""What an action is: a contract declared as class attributes, and a generator.

Like Cloud Custodian's actions, each declares its parameter schema, the IAM
permissions it needs (and the resources and conditions some are scoped to),
whether it mutates, what it batches, the states it may start from, which
pre-flight findings it risks, what a dry run would do, how it verifies itself
and which action undoes it. The registry, the JSON Schema,
``remediate list-actions`` and ``remediate iam-policy`` are all generated from
these attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from remediate.actions.requests import ActionRun
from remediate.actions.scoped import Scoped
from remediate.aws.principal import Attacher
from remediate.clock import Clock
from remediate.language.problems import Path, Problem, Problems
from remediate.language.schema import Record

if TYPE_CHECKING:
    from remediate.export.fragment import AslStep, Fragment

S = TypeVar("S", bound="RunService")


@dataclass(frozen=True)
class Target:
    kind: str
    id: str
    region: str
    account: str = "default"

    @property
    def key(self) -> str:
        """Unique across accounts and Regions: what the journal locks."""
        return f"{self.account}/{self.region}/{self.id}"


class Runtime(Protocol):
    clock: Clock

    def open_gate(self, key: str) -> None: ...

    def service(self, cls: type[S]) -> S: ...


@dataclass
class StepContext:
    run_id: str
    target: Target
    facts: dict[str, Any]
    runtime: Runtime
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    step_id: str = ""
    # The playbook's folder: script files named in params are relative to it.
    base_dir: str = "."
    # Finding kinds the operator accepted with --accept.
    accepted: frozenset[str] = frozenset()
    # Whether this step sent an operation (e.g. "SendCommand") for this target before,
    # in an earlier attempt or before a crash; None: not known.
    sent_before: Callable[[str], bool] | None = None
    # Whether it did in any pass of the run (a target started again after a rollback);
    # None: not known.
    sent_in_run: Callable[[str], bool] | None = None
    # Whether such a call's reply never arrived (journaled "unknown": a 5xx or a timeout;
    # or "sent" with no result: the tool died waiting); None: not known.
    unanswered_before: Callable[[str], bool] | None = None
    # The answers AWS gave this step's calls of an operation (as journaled); None: not known.
    answered_before: Callable[[str], list[Any]] | None = None
    # This run of the action finishes one that was cut short without learning what its
    # calls did: run again after an unknown outcome (reconciling), or the step was in
    # flight when the run stopped (resume). What a lost call started is its own work, to
    # adopt (an SSM command that already ended is judged, not sent again).
    continuing: bool = False
    # A rollback step: the kind of the step failure that started the rollback
    # (StepFailed.kind; None: another error, or not a rollback).
    failure: str | None = None

    def may_have_sent(self, operation: str) -> bool:
        """Whether an ``operation`` of this step may already be in flight for this target
        (a retry, a resumed run), so the action must look for it before sending it again.
        True when the executor cannot tell: looking is never wrong, only a call more."""
        return self.sent_before is None or self.sent_before(operation)

    def may_have_made(self, operation: str) -> bool:
        """Whether an ``operation`` of this step may have been sent for this target in
        this run, in any pass: what it made may be there to reuse. True when the executor
        cannot tell."""
        return self.sent_in_run is None or self.sent_in_run(operation)

    def answers(self, operation: str) -> list[Any]:
        """What AWS answered this step's ``operation`` calls for this target, in earlier
        attempts or before a crash (a truncated one is ``{"truncated": text}``)."""
        return [] if self.answered_before is None else self.answered_before(operation)

    def reply_lost(self, operation: str) -> bool:
        """Whether an ``operation`` of this step may have taken effect without its reply
        reaching the tool: what it made may exist and, AWS being eventually consistent,
        not be listed yet (look again a few times before making another). True when the
        executor cannot tell."""
        return self.unanswered_before is None or self.unanswered_before(operation)

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    def open_gate(self, key: str) -> None:
        self.runtime.open_gate(key)

    def service(self, cls: type[S]) -> S:
        return self.runtime.service(cls)


class RunService:
    """State shared by all targets of a run (e.g. the rescue pool).

    Created on first use by :meth:`StepContext.service`; ``finish`` runs once at
    the end of the run, also after failures and a first Ctrl-C, to clean up (after a
    second Ctrl-C the next ``resume`` does).
    """

    # What ``finish`` does, for "... is left to `remediate resume`" ("": its class name).
    cleanup = ""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def finish(self, ctx: StepContext) -> ActionRun:
        return {}
        yield  # pragma: no cover


@dataclass(frozen=True)
class PlannedCall:
    api: str  # "ec2:StopInstances"
    mutating: bool
    note: str = ""
    # The request a dry run's permission check sends with DryRun=True for this call
    # (None: the check's own, from the target's facts; see executor.permission_probe).
    probe: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Plan:
    """What a dry run says a step would do to one target."""

    calls: tuple[PlannedCall, ...] = ()
    skip: str | None = None  # why the step would be skipped (target already fine)
    note: str = ""


class Action(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    kinds: ClassVar[frozenset[str]] = frozenset({"ec2-instance"})
    params: ClassVar[Record] = Record(fields={})
    # Output name -> description; later steps read them as steps.<id>.outputs.<name>.
    outputs: ClassVar[Mapping[str, str]] = {}
    # Every IAM action it needs; ``scoped_permissions`` narrow some of them to resource
    # ARNs and conditions (the others are granted on "*"). See remediate.actions.scoped.
    permissions: ClassVar[tuple[str, ...]] = ()
    scoped_permissions: ClassVar[tuple[Scoped, ...]] = ()
    mutating: ClassVar[bool] = False
    # The API calls this action merges across targets, with AWS's limit per call.
    batches: ClassVar[Mapping[str, int]] = {}
    # States the target may be in for this action to run; anything else fails the step.
    start_states: ClassVar[frozenset[str]] = frozenset()
    # Finding kinds that matter when a playbook uses this action.
    risks: ClassVar[frozenset[str]] = frozenset()
    # A finding kind the operator must accept for this action to run at all.
    destructive: ClassVar[str | None] = None
    # True when its request leaves a record in AWS that a later attempt finds (a tagged
    # task): a retry that cannot read the journal (on Step Functions) still never sends
    # it twice. A destructive action without one cannot be retried there.
    finds_its_request: ClassVar[bool] = False
    verify: ClassVar[str] = ""
    undo: ClassVar[str | None] = None
    # A mutating action whose work needs no undoing if a later step leaves the target
    # untouched (refused): it makes things beside the target (a backup snapshot, a
    # rescue instance the run cleans up) and never changes the target itself.
    beside_target: ClassVar[bool] = False
    # What this action does differently once exported to Step Functions (warned at export).
    export_note: ClassVar[str | None] = None

    @property
    def changes_target(self) -> bool:
        """Whether a step of this action that ran may have changed the target itself:
        then a later step refusing the target does not end it untouched."""
        return self.mutating and not self.beside_target

    def grants(self, params: Mapping[str, Any] | None = None) -> tuple[Scoped, ...]:
        """What a policy allows for this action: its scoped permissions, and each other
        permission on any resource. With a step's ``params`` (as written under ``with``, the
        playbook's parameters put in), a scoped permission that ``needs`` a parameter the
        step does not set (or sets empty) is left out."""
        narrowed = {scoped.action for scoped in self.scoped_permissions}
        scoped = [grant for grant in self.scoped_permissions
                  if params is None or not grant.needs
                  or params.get(grant.needs) not in (None, "")]
        return (*scoped,
                *(Scoped(name) for name in self.permissions if name not in narrowed))

    def inspect_params(self, risks: frozenset[str], rescue_image_id: str | None = None,
                       rescue_instance_profile: str | None = None,
                       attacher: Attacher | None = None) -> dict[str, Any]:
        """Inspect actions: their params for a playbook whose actions declare ``risks``
        (finding kinds) and launch rescue instances from ``rescue_image_id`` with
        ``rescue_instance_profile``, so facts nothing will judge are not paid for;
        ``attacher``: the role that will call AttachVolume (None: the caller)."""
        return {}

    def validate(self, params: Mapping[str, Any], base_dir: str) -> list[Problem]:
        """Rules the schema cannot say (cross-field, files exist), on params the schema
        accepted; each problem's path is under ``with``. ``base_dir`` is the playbook's
        folder."""
        return []

    def check_params(self, params: Mapping[str, Any], path: Path,
                     base_dir: str) -> tuple[Any, list[Problem]]:
        """A step's ``with`` (at ``path``) judged by the schema and, once the schema
        accepts it, by :meth:`validate`: the checked value (``INVALID`` if the schema
        refused it) and every problem. ``validate`` and the parameter checks of
        ``plan``/``run`` both judge a step through here."""
        problems = Problems()
        checked = self.params.check(params, path, problems)
        if not problems and isinstance(checked, Mapping):
            problems.extend([replace(p, path=(*path, *p.path))
                             for p in self.validate(checked, base_dir)])
        return checked, problems.items

    @abstractmethod
    def plan(self, ctx: StepContext, params: Mapping[str, Any]) -> Plan:
        """What a dry run would do (no AWS calls; facts are in ``ctx.facts``)."""

    @abstractmethod
    def run(self, ctx: StepContext, params: Mapping[str, Any]) -> ActionRun:
        """Do it: yield requests, return the outputs."""

    def asl(self, step: AslStep) -> Fragment:
        """This action as Amazon States Language states, for ``remediate export``.

        An action without a fragment cannot run on Step Functions; the export
        says so before anything is deployed.
        """
        from remediate.export.errors import NotExportable

        raise NotExportable(self.name, "it has no Step Functions fragment; run this playbook "
                                       "with the local engine")


def calls(*apis: str, mutating: bool = True, note: str = "",
          probe: Mapping[str, Any] | None = None) -> tuple[PlannedCall, ...]:
    return tuple(PlannedCall(api, mutating, note, probe) for api in apis)
