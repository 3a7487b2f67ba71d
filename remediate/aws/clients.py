"""boto3 clients, one per (account, Region, service), built once and shared by all threads.

Every client gets the same botocore ``Config``: one attempt (retries happen in
one layer only, remediate's: see :mod:`remediate.aws.retry`), a connection pool
as large as the run's concurrency, explicit timeouts, and ``remediate/<version>``
in the user agent so CloudTrail shows who did what.

Accounts come from the playbook (:class:`~remediate.language.model.Account`): a
profile, a role assumed with STS (session name ``remediate-<run id>``,
credentials refreshed before they expire), or both (the profile's credentials
assume the role). Without accounts, AWS's standard environment applies as is:
AWS_PROFILE, the credentials chain, AWS_REGION / AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.

boto3 is imported inside functions only: ``remediate --help`` and ``validate``
never load it.
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from types import MappingProxyType
from typing import Any

from remediate import __version__
from remediate.aws.apis import is_mutating
from remediate.aws.errors import from_exception
from remediate.errors import UserError
from remediate.language.model import Account

DEFAULT_ACCOUNT = "default"
# One attempt, no botocore retries (remediate retries in one layer: remediate.aws.retry).
# Not ``max_attempts: 1``: botocore reads that as one *retry*, two attempts.
BOTOCORE_RETRIES = MappingProxyType({"mode": "standard", "total_max_attempts": 1})
# Where AssumeRole goes when nothing names a Region (STS works from any).
STS_FALLBACK_REGION = "us-east-1"


class ClientSetupError(UserError):
    """Credentials, profile, role or Region problems: one line, before any target is touched."""


class DryRunRefused(Exception):
    """A mutating call reached a client of a dry run (the executor should have stopped it)."""

    def __init__(self, service: str, operation: str) -> None:
        super().__init__(f"dry run: refusing {service}:{operation}, which changes AWS resources")
        self.service = service
        self.operation = operation


@dataclass(frozen=True)
class ClientCall:
    """One API call a client is about to send."""

    service: str
    operation: str
    mutating: bool  # False for EC2's DryRun=True permission checks


CallHook = Callable[[ClientCall], None]


def _call_of(model: Any, request: Any) -> ClientCall:
    """The call ``model`` names; ``request`` is botocore's serialized request dict."""
    service, operation = model.service_model.service_name, model.name
    body = request.get("body") if isinstance(request, dict) else None
    # EC2's own dry run (DryRun=True, serialized "true") checks permissions only.
    probe = service == "ec2" and isinstance(body, dict) and body.get("DryRun") == "true"
    return ClientCall(service, operation, is_mutating(service, operation) and not probe)


class DryRunGuard:
    """A botocore ``before-call`` handler that refuses every mutating operation.

    The executor never sends a mutating call in a dry run; this guard is the
    second line of defence, so a bug there cannot change a fleet. EC2 requests
    with ``DryRun=True`` pass: AWS only checks the caller's permissions. "Mutating" is
    :func:`remediate.aws.apis.is_mutating` (unknown operations count as mutating).
    """

    def __call__(self, model: Any, params: Any = None, **_: Any) -> None:
        call = _call_of(model, params)
        if call.mutating:
            raise DryRunRefused(call.service, call.operation)

    def install(self, client: Any) -> None:
        client.meta.events.register_first("before-call", self)


class CallCounter:
    """A :data:`CallHook` counting calls by (service, operation): for tests and benchmarks."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.mutating = 0
        self._lock = threading.Lock()

    def __call__(self, call: ClientCall) -> None:
        with self._lock:
            self.counts[(call.service, call.operation)] += 1
            self.mutating += call.mutating

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class _Hooks:
    """Calls every hook with each call a client sends (after the dry-run guard)."""

    def __init__(self, hooks: Sequence[CallHook]) -> None:
        self.hooks = tuple(hooks)

    def __call__(self, model: Any, params: Any = None, **_: Any) -> None:
        call = _call_of(model, params)
        for hook in self.hooks:
            hook(call)


def single_attempt() -> Any:
    """A botocore ``Config`` of one attempt, for clients made outside :class:`Clients`
    (tests, tools): they retry in remediate's one layer too."""
    from botocore.config import Config

    return Config(retries=dict(BOTOCORE_RETRIES))


@dataclass(frozen=True)
class ClientSettings:
    # At least the run's concurrency, or threads queue for a connection.
    max_pool_connections: int = 50
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    def config(self) -> Any:
        from botocore.config import Config

        return Config(retries=dict(BOTOCORE_RETRIES),
                      max_pool_connections=self.max_pool_connections,
                      connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                      user_agent_extra=f"remediate/{__version__}")


def role_session_name(run_id: str) -> str:
    """``remediate-<run id>``, as STS allows it (``[\\w+=,.@-]``, at most 64 characters)."""
    return re.sub(r"[^\w+=,.@-]", "-", f"remediate-{run_id}")[:64]


class _FixedCredentials:
    """A botocore credential provider that always answers with the same credentials."""

    METHOD = "remediate-assume-role"

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials

    def load(self) -> Any:
        return self.credentials


@cache
def _data_loader() -> Any:
    import botocore.session

    return botocore.session.get_session().get_component("data_loader")


def _botocore_session(profile: str | None) -> Any:
    """A botocore session sharing one model loader with all others: the EC2 model alone
    takes about a second to parse, once per process rather than once per account."""
    import botocore.session

    core = botocore.session.Session(profile=profile)
    core.register_component("data_loader", _data_loader())
    return core


class ClientFactory:
    """Thread-safe boto3 clients per (account, Region, service), created on first use.

    ``session`` replaces the default credentials chain for accounts without a
    profile (the sandbox passes its own); ``endpoint_url`` sends every call there;
    ``dry_run`` installs a :class:`DryRunGuard` on every client; each of
    ``hooks`` sees every call sent.
    """

    def __init__(
        self,
        accounts: Sequence[Account] = (),
        *,
        run_id: str = "local",
        session: Any = None,
        endpoint_url: str | None = None,
        settings: ClientSettings | None = None,
        dry_run: bool = False,
        hooks: Sequence[CallHook] = (),
    ) -> None:
        self.accounts = {a.name: a for a in accounts} or {DEFAULT_ACCOUNT: Account(DEFAULT_ACCOUNT)}
        self.run_id = run_id
        self.endpoint_url = endpoint_url
        self.settings = settings or ClientSettings()
        self.guard = DryRunGuard() if dry_run else None
        self.hooks = _Hooks(hooks) if hooks else None
        self._session = session
        self._sessions: dict[str, Any] = {}
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._config: Any = None
        self._lock = threading.RLock()

    def __call__(self, service: str, region: str) -> Any:
        """``(service, region) -> client`` of the default account (what the driver takes)."""
        return self.client(service, region)

    def client(self, service: str, region: str | None = None,
               account: str = DEFAULT_ACCOUNT) -> Any:
        """The client; ``region`` defaults to :meth:`default_region`."""
        cached = self._clients.get((account, region or "", service))
        if cached is not None:  # the hot path: no lock once a client exists
            return cached
        with self._lock:
            session = self.session(account)
            region = self._check_region(region or self.default_region(account))
            key = (account, region, service)
            client = self._clients.get(key)
            if client is None:
                if self._config is None:
                    self._config = self.settings.config()
                client = session.client(service, region_name=region, config=self._config,
                                        endpoint_url=self.endpoint_url)
                if self.guard is not None:
                    self.guard.install(client)
                if self.hooks is not None:
                    client.meta.events.register_last("before-call", self.hooks)
                self._clients[key] = client
            return client

    def default_region(self, account: str = DEFAULT_ACCOUNT) -> str | None:
        """AWS_REGION, else the account's session Region (AWS_DEFAULT_REGION, the profile)."""
        return os.environ.get("AWS_REGION") or self.session(account).region_name

    def session(self, account: str = DEFAULT_ACCOUNT) -> Any:
        """The account's boto3 Session: credentials checked, role set up to be assumed."""
        with self._lock:
            if account not in self._sessions:
                self._sessions[account] = self._open(self._account(account))
            return self._sessions[account]

    def identity(self, account: str = DEFAULT_ACCOUNT) -> str:
        """The AWS account id behind ``account`` (STS GetCallerIdentity): proves it works."""
        sts = self.client("sts", self.default_region(account) or STS_FALLBACK_REGION, account)
        try:
            return str(sts.get_caller_identity()["Account"])
        except Exception as exc:
            error = from_exception(exc, "GetCallerIdentity")
            raise ClientSetupError(f"account {account}: {error}") from exc

    # -- setting up ----------------------------------------------------------------------

    def _account(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            known = ", ".join(sorted(self.accounts))
            raise ClientSetupError(f"unknown account {name!r} (this run has: {known})") from None

    def _open(self, account: Account) -> Any:
        import boto3
        from botocore.exceptions import BotoCoreError, ProfileNotFound

        where = f"account {account.name}"
        try:
            if account.profile is None and self._session is not None:
                base = self._session
            else:
                base = boto3.Session(botocore_session=_botocore_session(account.profile))
            credentials = base.get_credentials()
        except ProfileNotFound as exc:
            named = repr(account.profile or exc.kwargs.get("profile"))
            if account.profile is None:
                named += " (from AWS_PROFILE)"
            raise ClientSetupError(f"{where}: AWS profile {named} not found in ~/.aws/config "
                                   "or ~/.aws/credentials") from None
        except BotoCoreError as exc:
            raise ClientSetupError(f"{where}: cannot load AWS credentials: {exc}") from None
        if credentials is None:
            raise ClientSetupError(
                f"{where}: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, run `aws sso login`, or give the account a profile)")
        if account.role_arn is None:
            return base
        return self._assume(base, credentials, account)

    def _assume(self, base: Any, credentials: Any, account: Account) -> Any:
        """A session whose credentials come from AssumeRole, fetched on first use and
        refreshed (by botocore) 15 minutes before they expire."""
        import boto3
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            CredentialResolver,
            DeferredRefreshableCredentials,
        )

        extra = {"RoleSessionName": role_session_name(self.run_id)}
        if account.external_id:
            extra["ExternalId"] = account.external_id
        sts_region = os.environ.get("AWS_REGION") or base.region_name or STS_FALLBACK_REGION
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=partial(base.client, region_name=sts_region,
                                   endpoint_url=self.endpoint_url),
            source_credentials=credentials, role_arn=account.role_arn, extra_args=extra)
        assumed = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials,
                                                 method="assume-role")
        core = _botocore_session(account.profile)
        core.register_component("credential_provider",
                                CredentialResolver([_FixedCredentials(assumed)]))
        return boto3.Session(botocore_session=core)

    def _check_region(self, region: str | None) -> str:
        if not region:
            raise ClientSetupError("no AWS Region: set AWS_REGION, pass --region, or list "
                                   "regions under the playbook's targets")
        if region not in known_regions():
            import botocore

            close = difflib.get_close_matches(region, sorted(known_regions()), n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else (
                f"; botocore {botocore.__version__} does not know it: if it is new, "
                "upgrade boto3")
            raise ClientSetupError(f"unknown AWS Region {region!r}{hint}")
        return region


@cache
def known_regions() -> frozenset[str]:
    """Every Region botocore knows EC2 in, in every partition (EC2 is in all of them).
    Read once per process: it loads botocore's endpoint data (~0.3 s)."""
    import botocore.session

    probe = botocore.session.get_session()
    return frozenset(region for partition in probe.get_available_partitions()
                     for region in probe.get_available_regions("ec2", partition))
