"""The claim a run writes on each target in AWS: the tag ``remediate:claim``.

Its value names the run, its host and pid, when the run started and until when the
claim holds, e.g. ``run=r20240719-0431-ab12cd host=bastion-1 pid=4242
since=2024-07-19T04:31:02Z until=2024-07-19T04:46:02Z`` (characters WorkSpaces tags
allow: letters, digits, spaces and ``_.:/=+-@``). A run renews it while it lives;
one that crashed stops renewing, and its claim is then taken over once ``until``
has passed (or at once on the same host, where its pid can be seen to be gone).

This module only says what a value means for a run that finds it (:func:`judge`);
reading and writing it is :mod:`remediate.claims.tag_io`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Final

from remediate.journal.records import LockHolder

CLAIM_TAG: Final = "remediate:claim"
_UNSAFE: Final = re.compile(r"[^\w.:/=+\-@]")
_TIME: Final = "%Y-%m-%dT%H:%M:%SZ"
_FIELDS: Final = ("run", "host", "pid", "since", "until")


def safe(text: str, limit: int = 63) -> str:
    """``text`` in the characters every tag value allows (WorkSpaces' are the fewest)."""
    return _UNSAFE.sub("-", text)[:limit]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TIME)


@dataclass(frozen=True)
class Claim:
    run_id: str
    host: str
    pid: int
    since: str
    until: datetime

    @classmethod
    def of(cls, run_id: str, host: str, pid: int, since: datetime, until: datetime) -> Claim:
        return cls(safe(run_id), safe(host), pid, stamp(since), until)

    def text(self) -> str:
        return (f"run={self.run_id} host={self.host} pid={self.pid} since={self.since} "
                f"until={stamp(self.until)}")

    @classmethod
    def parse(cls, text: str) -> Claim:
        """A claim from its tag value; ValueError if it is not one."""
        fields = dict(part.partition("=")[::2] for part in text.split())
        missing = [name for name in _FIELDS if not fields.get(name)]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        until = datetime.strptime(fields["until"], _TIME).replace(tzinfo=UTC)
        return cls(fields["run"], fields["host"], int(fields["pid"]), fields["since"], until)

    def renewed(self, until: datetime) -> Claim:
        return replace(self, until=until)

    def holder(self, target_key: str) -> LockHolder:
        return LockHolder(target_key, self.run_id, self.pid, self.host, self.since)

    @property
    def where(self) -> str:
        """What a refusal adds to the holder's description: where the claim was read."""
        return f"claim tag {CLAIM_TAG} on the target, until {stamp(self.until)}"


class Verdict(Enum):
    FREE = "free"  # no claim
    OURS = "ours"  # this run's (a resume takes it back)
    STALE = "stale"  # another run's, expired or of a process gone on this host: take it
    HELD = "held"  # another live run's: refuse the target
    UNREADABLE = "unreadable"  # not a value this version reads: refuse, say how to clear it


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    claim: Claim | None = None
    value: str = ""

    def refusal(self, target_key: str) -> str:
        """The line a refused target ends with."""
        if self.claim is None:
            return (f"{target_key} carries a tag {CLAIM_TAG}={self.value!r} that is not a claim "
                    "this version of remediate reads: delete the tag if no run works on it")
        return f"{target_key} is {self.claim.holder(target_key).describe()} ({self.claim.where})"

    def takeover(self, target_key: str, host: str) -> str:
        """The warning when a stale claim is taken over."""
        assert self.claim is not None
        claim = self.claim
        why = (f"pid {claim.pid} on {claim.host} is gone" if claim.host == host
               else f"pid {claim.pid} on {claim.host}, expired {stamp(claim.until)}")
        return f"{target_key}: took over the claim of run {claim.run_id} ({why})"


def judge(value: str | None, run_id: str, host: str, now: datetime,
          alive: Callable[[int], bool]) -> Judgement:
    """What the claim tag ``value`` found on a target means for run ``run_id`` on
    ``host``: a live process on this host holds its claim whatever its expiry (it may
    only be slow to renew); one on another host holds it until it expires."""
    if not value:
        return Judgement(Verdict.FREE)
    try:
        claim = Claim.parse(value)
    except ValueError:
        return Judgement(Verdict.UNREADABLE, value=value)
    if claim.run_id == safe(run_id):
        return Judgement(Verdict.OURS, claim, value)
    live = alive(claim.pid) if claim.host == safe(host) else claim.until > now
    return Judgement(Verdict.HELD if live else Verdict.STALE, claim, value)
