"""Which targets a run works on: the playbook's selector, overridden from the command line,
resolved against AWS in every Region and account it names.

EC2 instances come from DescribeInstances (filters sent to AWS: ``tag:KEY``, the
user's filters, and by default only instances that are not terminated or
shutting down). WorkSpaces come from DescribeWorkspaces, filtered here (the API
filters by one directory or user only), their tags fetched with DescribeTags
only when the selector names tags. Each page is retried on throttling with
remediate's own policy (clients never retry: :mod:`remediate.aws.clients`).

The result is sorted by (account, Region, id), and ``--limit`` keeps the first N
of that order, so a limited run picks the same targets every time. Matching
nothing is an error that names the selector: a run of "0 of 0 targets" hides a
typo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Final

from remediate.actions.contract import Target
from remediate.aws.clients import DEFAULT_ACCOUNT, ClientFactory
from remediate.aws.errors import from_exception
from remediate.aws.resources import RESOURCES
from remediate.aws.retry import RetryPolicy
from remediate.aws.retrying import retried
from remediate.clock import Clock, RealClock
from remediate.errors import UserError
from remediate.language.model import TargetSelector

log = logging.getLogger(__name__)

Values = tuple[str, ...]
# States a target is never selected in, unless a filter on the state says otherwise.
EC2_LIVE: Final = ("pending", "running", "stopping", "stopped")
WORKSPACE_GONE: Final = frozenset({"TERMINATING", "TERMINATED"})
# WorkSpaces filter name -> where its value sits in a DescribeWorkspaces record.
WORKSPACE_FILTERS: Final[Mapping[str, tuple[str, ...]]] = {
    "directory-id": ("DirectoryId",),
    "user-name": ("UserName",),
    "bundle-id": ("BundleId",),
    "state": ("State",),
    "computer-name": ("ComputerName",),
    "ip-address": ("IpAddress",),
    "running-mode": ("WorkspaceProperties", "RunningMode"),
}
EC2_IDS_PER_CALL: Final = 200
EC2_PAGE_SIZE = 1000
WORKSPACE_IDS_PER_CALL: Final = 25


class DiscoveryError(UserError):
    pass


@dataclass(frozen=True)
class Overrides:
    """What the command line says about targets; each given item replaces the playbook's."""

    target_ids: Values = ()
    tags: Mapping[str, Values] = field(default_factory=dict)
    filters: Mapping[str, Values] = field(default_factory=dict)
    regions: Values = ()
    limit: int | None = None


def parse_pairs(items: Sequence[str], option: str, *, split: bool) -> dict[str, Values]:
    """``--tag KEY=VALUE`` (repeat a key for more values; a bare ``KEY``: any value) or
    ``--filter NAME=VALUE,VALUE`` (``split``)."""
    pairs: dict[str, Values] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not name or (split and not value) or (sep and not value):
            shape = "NAME=VALUE[,VALUE...]" if split else "KEY=VALUE (or KEY)"
            raise DiscoveryError(f"{option} expects {shape}, got {item!r}")
        values = tuple(v.strip() for v in value.split(",")) if split else (value,) if sep else ()
        pairs[name] = pairs.get(name, ()) + values
    return pairs


def select(selector: TargetSelector, overrides: Overrides) -> TargetSelector:
    return replace(selector, ids=overrides.target_ids or selector.ids,
                   tags={**selector.tags, **overrides.tags},
                   filters={**selector.filters, **overrides.filters},
                   regions=overrides.regions or selector.regions)


def describe(selector: TargetSelector, regions: Sequence[str] = ()) -> str:
    """The selector in words, for errors: ``kind workspace, tags Team=web in us-east-1``."""
    parts = [f"kind {selector.kind}"]
    if selector.ids:
        parts.append("ids " + ", ".join(selector.ids))
    for label, pairs in (("tags", selector.tags), ("filters", selector.filters)):
        if pairs:
            parts.append(label + " " + ", ".join(
                f"{k}={'|'.join(v)}" if v else k for k, v in sorted(pairs.items())))
    text = ", ".join(parts)
    if regions or selector.regions:
        text += " in " + ", ".join(regions or selector.regions)
    if selector.accounts:
        text += " (accounts " + ", ".join(a.name for a in selector.accounts) + ")"
    return text


def tags_match(tags: Mapping[str, str], wanted: Mapping[str, Values]) -> bool:
    """Every wanted key is present, with one of its values (any value when none listed)."""
    return all(key in tags and (not values or tags[key] in values)
               for key, values in wanted.items())


def _chunks(ids: Values, size: int) -> list[list[str]]:
    return [list(ids[start:start + size]) for start in range(0, len(ids), size)]


@dataclass
class _Search:
    """One (account, Region): the calls, retried on throttling, and the matches."""

    selector: TargetSelector
    clients: ClientFactory
    account: str
    region: str
    clock: Clock
    policy: RetryPolicy

    def call(self, service: str, operation: str, **params: Any) -> Mapping[str, Any]:
        method = getattr(self.clients.client(service, self.region, self.account),
                         _snake(operation))
        try:
            response: Mapping[str, Any] = retried(lambda: method(**params), operation,
                                                  self.clock, self.policy)
        except Exception as exc:  # every boto3 failure, once retries are spent: report it
            error = from_exception(exc, operation)
            raise DiscoveryError(f"account {self.account}, {self.region}: {operation} "
                                 f"failed: {error}") from exc
        return response

    def pages(self, service: str, operation: str, **params: Any) -> Iterator[Mapping[str, Any]]:
        while True:
            page = self.call(service, operation, **params)
            yield page
            if not page.get("NextToken"):
                return
            params = {**params, "NextToken": page["NextToken"]}

    def target(self, target_id: str) -> Target:
        return Target(self.selector.kind, target_id, self.region, self.account)

    def ec2(self) -> list[Target]:
        sel = self.selector
        filters = {f"tag:{k}": v for k, v in sel.tags.items() if v}
        filters.update(sel.filters)
        filters.setdefault("instance-state-name", EC2_LIVE)
        found = []
        for ids in _chunks(sel.ids, EC2_IDS_PER_CALL) or [[]]:
            wanted = {**filters, "instance-id": tuple(ids)} if ids else filters
            request = [{"Name": name, "Values": list(values)} for name, values in wanted.items()]
            for page in self.pages("ec2", "DescribeInstances", Filters=request,
                                   MaxResults=EC2_PAGE_SIZE):
                for instance_id, instance in RESOURCES["instance"].records(page):
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    if tags_match(tags, sel.tags):
                        found.append(self.target(instance_id))
        return found

    def workspaces(self) -> list[Target]:
        sel = self.selector
        found = []
        for ids in _chunks(sel.ids, WORKSPACE_IDS_PER_CALL) or [[]]:
            request = {"WorkspaceIds": ids} if ids else {}
            for page in self.pages("workspaces", "DescribeWorkspaces", **request):
                for workspace_id, workspace in RESOURCES["workspace"].records(page):
                    if self._workspace_matches(workspace_id, workspace):
                        found.append(self.target(workspace_id))
        return found

    def _workspace_matches(self, workspace_id: str, workspace: Mapping[str, Any]) -> bool:
        filters = self.selector.filters
        if "state" not in filters and workspace.get("State") in WORKSPACE_GONE:
            return False
        for name, values in filters.items():
            value: Any = workspace
            for key in WORKSPACE_FILTERS[name]:
                value = value.get(key) if isinstance(value, Mapping) else None
            if value not in values:
                return False
        if not self.selector.tags:
            return True
        response = self.call("workspaces", "DescribeTags", ResourceId=workspace_id)
        tags = {t["Key"]: t.get("Value", "") for t in response.get("TagList", [])}
        return tags_match(tags, self.selector.tags)


def _snake(operation: str) -> str:
    from botocore import xform_name

    return str(xform_name(operation))


FINDERS: Final[Mapping[str, Callable[[_Search], list[Target]]]] = {
    "ec2-instance": _Search.ec2,
    "workspace": _Search.workspaces,
}


def _check(selector: TargetSelector, overrides: Overrides) -> None:
    """What can be wrong before any call."""
    if selector.kind not in FINDERS:
        raise DiscoveryError(f"cannot discover targets of kind {selector.kind!r} "
                             f"(known: {', '.join(FINDERS)})")
    if overrides.limit is not None and overrides.limit < 1:
        raise DiscoveryError(f"--limit must be at least 1, got {overrides.limit}")
    if selector.kind == "workspace":
        unknown = sorted(set(selector.filters) - set(WORKSPACE_FILTERS))
        if unknown:
            raise DiscoveryError(f"unknown WorkSpaces filter {unknown[0]!r} (known: "
                                 f"{', '.join(WORKSPACE_FILTERS)})")


def discover(
    selector: TargetSelector,
    clients: ClientFactory,
    overrides: Overrides | None = None,
    *,
    clock: Clock | None = None,
    policy: RetryPolicy | None = None,
    warn: Callable[[str], None] = log.warning,
    workers: int = 8,
    empty_ok: bool = False,
) -> list[Target]:
    """The targets, sorted by (account, Region, id), at most ``overrides.limit`` of them.

    ``warn`` hears about ids named explicitly that were not found (or did not
    match the rest of the selector); finding nothing at all raises DiscoveryError,
    unless ``empty_ok`` (triage looks for instances and WorkSpaces, and says itself
    when it found neither).
    """
    overrides = overrides or Overrides()
    selector = select(selector, overrides)
    _check(selector, overrides)
    accounts = [a.name for a in selector.accounts] or [DEFAULT_ACCOUNT]
    searches = [
        _Search(selector, clients, account, region, clock or RealClock(), policy or RetryPolicy())
        for account in accounts
        for region in selector.regions or [clients.default_region(account) or ""]
    ]
    find = FINDERS[selector.kind]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(searches)))) as pool:
        results = list(pool.map(find, searches))
    targets = sorted({t.key: t for found in results for t in found}.values(),
                     key=lambda t: (t.account, t.region, t.id))
    regions = sorted({s.region for s in searches})
    if not targets and not empty_ok:
        raise DiscoveryError(f"no targets matched {describe(selector, regions)}")
    missing = sorted(set(selector.ids) - {t.id for t in targets})
    if missing:
        warn(f"{len(missing)} of the {len(selector.ids)} ids named were not found in "
             f"{', '.join(regions)} or do not match the selector: {', '.join(missing)}")
    return targets[:overrides.limit] if overrides.limit is not None else targets
