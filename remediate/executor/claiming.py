"""A run's claims on its targets, besides the journal's lock: on this host and in AWS.

In a run: journal lock -> :meth:`TargetClaims.hold_on_host` (the host's registry of
live runs, :mod:`remediate.claims.registry`) -> ``--lock-table`` leases -> inspection
(reads only) -> :meth:`TargetClaims.claim_in_aws` (the claim tag, before any target's
first mutating call) -> steps -> :meth:`TargetClaims.release`.

The claim round runs for all targets at once, so its calls merge (on EC2 a DescribeTags
per 200 instances, a CreateTags per 1,000):

1. read each target's claim tag: refuse a target another live run claims (naming
   it), take over a stale claim (with a warning), take back this run's own (resume);
2. write this run's claim;
3. wait :data:`SETTLE` seconds and read it back. Tags have no conditional write: two
   runs that claimed at once both wrote, and the later write won; the run that reads
   back the other's claim refuses the target. This holds if each run's write lands
   within ``SETTLE`` of its read, so a run whose write waited more than half of it
   in its own queue (throttled, say) removes its claim and refuses the target rather
   than trust it; and if AWS shows a tag within the delay (eventual consistency, which
   AWS does not bound: ``--lock-table`` is the strict guarantee). Only as many targets
   read as their writes can follow in time (:mod:`remediate.executor.claim_window`):
   the pacing of one write per WorkSpace must not pass for a race.

While the run lives it renews its claims every third of :data:`TTL` (reading each
first: one another run took over after ours expired is *lost*, and that target
starts no further step) and removes the claims of targets that finished. At the end
it removes the rest, except on targets left mid-way (Ctrl-C twice), which keep it
until it expires so no other run starts on a half-done target before ``resume``.
After a crash the claims are left to expire; ``resume`` takes them back at once, and
at its end removes the ones the crashed process left on targets it had finished (the
journal shows which claims may still be there; each is read, and removed if it is
this run's).
Renewal runs on the scheduler, so nothing renews while the question after the canary
batch waits for a human: past :data:`TTL` another run may take the targets over, and
the first renewal after the answer finds them lost (they do not start here).
A dry run writes nothing; it reports the targets a live run holds as refused.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from remediate.actions.contract import Target
from remediate.actions.requests import OutcomeUnknown, Sleep
from remediate.claims.registry import HostRegistry
from remediate.claims.tag import CLAIM_TAG, Claim, Judgement, Verdict, judge, stamp
from remediate.claims.tag_io import CLAIM_TAGS, ClaimTags
from remediate.executor.claim_window import Window, window_size
from remediate.executor.context import RunContext
from remediate.executor.events import Notice
from remediate.executor.scheduler import Caller
from remediate.executor.target_runner import TargetRunner
from remediate.journal.locks import pid_alive
from remediate.language.durations import format_duration

SETTLE: Final = 10.0
TTL: Final = 900.0
ROUNDS: Final = 3
# A claim whose write waited longer than this share of the settle delay for its turn
# (pacing, retries after throttling) is not trusted (see the module's docstring).
WINDOW_SHARE: Final = 0.5
MIDWAY: Final = frozenset({"steps", "rollback"})
CALLS_PREFIX: Final = "claim:"
"""Claim calls are journaled under ``claim:<target key>`` (see :meth:`TargetClaims._spawn`)."""


def _lost_reply_ok(flow: Generator[Any, Any, Any]) -> Generator[Any, Any, None]:
    """Write or remove a claim; a reply AWS lost is no failure: a claim is read back (or
    renewed) before it is trusted, and one left behind expires."""
    try:
        yield from flow
    except OutcomeUnknown:
        return


@dataclass(frozen=True)
class ClaimOutcome:
    refusal: str | None = None  # why the target is refused (None: it is this run's)
    warning: str | None = None  # a stale claim taken over


def refuse(runner: TargetRunner, reason: str) -> None:
    """End ``runner`` refused, or interrupted if it is mid-way (``resume`` goes on)."""
    if runner.phase in MIDWAY:
        runner.finish("interrupted", f"{reason}; `remediate resume` continues it once "
                                     "that run is done")
    else:
        runner.finish("refused", reason)


class TargetClaims:
    def __init__(self, rc: RunContext, registry: HostRegistry, finished: Callable[[str], bool],
                 *, ttl: float = TTL, settle: float = SETTLE) -> None:
        """``finished(target_key)``: whether that target is done with (its claim is then
        removed at the next renewal)."""
        self.rc = rc
        self.registry = registry
        self.finished = finished
        self.ttl = ttl
        self.settle = settle
        self.held: dict[str, tuple[Target, str]] = {}  # target key -> (target, value written)
        self._windows: dict[tuple[str, str, str], Window] = {}  # (account, region, kind)
        self._since = rc.now()
        self._next_renewal: float | None = None
        self._renewals = 0  # renewal tasks in flight
        self._registered = False
        if not rc.dry_run:
            rc.scheduler.add_pump(self._pump, keepalive=True)

    def _judge(self, value: str | None) -> Judgement:
        rc = self.rc
        return judge(value, rc.run_id, rc.journal.host, rc.now(), pid_alive)

    def _claim(self, until: datetime) -> str:
        rc = self.rc
        return Claim.of(rc.run_id, rc.journal.host, rc.journal.pid, self._since, until).text()

    def _notice(self, level: Any, text: str) -> None:
        self.rc.bus.publish(Notice(level, text))

    # ---- this host -------------------------------------------------------------------

    def hold_on_host(self, runners: list[TargetRunner], started: datetime) -> list[TargetRunner]:
        """Runners no other live run on this host holds; the others end refused."""
        rc = self.rc
        self._since = started
        targets = [r.target for r in runners]
        if rc.dry_run:
            refused = self.registry.holders(rc.run_id, rc.journal.pid, targets)
        else:
            outcome = self.registry.acquire(rc.run_id, rc.journal.pid, started.isoformat(),
                                            rc.journal.path, targets)
            self._registered = True
            refused = outcome.refused
            for text in outcome.unreadable:
                self._notice("warning", f"ignored an unreadable entry of the run registry: "
                                        f"{text}")
            for key, gone in outcome.taken_over.items():
                self._notice("warning", f"{key}: took over from run {gone.run_id} (pid "
                                        f"{gone.pid} on {gone.host} is gone; its journal: "
                                        f"{gone.journal})")
        kept = []
        for runner in runners:
            entry = refused.get(runner.target.key)
            if entry is None:
                kept.append(runner)
            else:
                key = runner.target.key
                refuse(runner, f"{key} is {entry.holder(key).describe()} (journal "
                               f"{entry.journal})")
        return kept

    # ---- AWS -------------------------------------------------------------------------

    def claim_in_aws(self, runners: list[TargetRunner]) -> list[TargetRunner]:
        """Runners this run now claims in AWS; the others end refused, naming the holder."""
        if self.rc.dry_run:
            return self._check_facts(runners)
        if self.rc.stop_level:  # Ctrl-C already: no target starts, nothing to claim
            return runners
        value = self._claim(self.rc.now() + timedelta(seconds=self.ttl))
        outcomes: dict[str, ClaimOutcome] = {}
        for runner in runners:
            tags = CLAIM_TAGS.get(runner.target.kind)
            if tags is not None:
                self._spawn(runner.target, "claim", self._claim_one(runner.target, tags, value),
                            outcomes)
        self.rc.scheduler.run()
        self.rc.journal.commit()
        kept = []
        for runner in runners:
            outcome = outcomes.get(runner.target.key, ClaimOutcome())
            if outcome.warning:
                self._notice("warning", outcome.warning)
            if outcome.refusal:
                refuse(runner, outcome.refusal)
            else:
                kept.append(runner)
        if self.held:
            self._next_renewal = self.rc.clock.now() + self.ttl / 3
        return kept

    def _spawn(self, target: Target, what: str, flow: Generator[Any, Any, Any],
               outcomes: dict[str, ClaimOutcome] | None = None) -> None:
        """Run ``flow`` for ``target``; its calls are journaled under ``claim:<key>`` (not
        the target's own key: they mark it, they do not change it, and never count as
        the target's mutations)."""
        def done(result: Any, error: BaseException | None) -> None:
            if outcomes is not None:
                outcomes[target.key] = (result if error is None else ClaimOutcome(
                    f"{target.key}: could not claim it ({error}): refused, as other runs "
                    "would not see this one"))
            elif error is not None:
                self._notice("warning", f"{target.key}: could not {what} its claim tag "
                                        f"{CLAIM_TAG}: {error}")

        self.rc.scheduler.spawn(f"{what} {target.key}", flow,
                                Caller(target.account, target.region, CALLS_PREFIX + target.key,
                                       what), done)

    def _window(self, target: Target, tags: ClaimTags) -> Window:
        """Where ``target``'s claim waits to be read (see claim_window)."""
        where = (target.account, target.region, target.kind)
        if where not in self._windows:
            size = window_size(self.rc.calls.limiter, *tags.write_api,
                               self.settle * WINDOW_SHARE)
            self._windows[where] = Window(self.rc.gates, size)
        return self._windows[where]

    def _claim_one(self, target: Target, tags: ClaimTags,
                   value: str) -> Generator[Any, Any, ClaimOutcome]:
        window = self._window(target, tags)
        for _ in range(ROUNDS):
            yield from window.enter(target.key)
            try:
                found = self._judge((yield from tags.read(target)))
                if found.verdict in (Verdict.HELD, Verdict.UNREADABLE):
                    return ClaimOutcome(found.refusal(target.key))
                yield from _lost_reply_ok(tags.write(target, value))
            finally:
                window.leave()
            self.held[target.key] = (target, value)
            waited = self.rc.calls.waited.get(CALLS_PREFIX + target.key, 0.0)
            bound = self.settle * WINDOW_SHARE
            if waited > bound:
                yield from _lost_reply_ok(tags.remove(target, value))
                del self.held[target.key]
                return ClaimOutcome(f"{target.key}: its claim tag {CLAIM_TAG} waited "
                                    f"{format_duration(waited)} to be written after it was read "
                                    f"(throttled; more than {format_duration(bound)}): another "
                                    "run may have claimed it meanwhile; refused")
            yield Sleep(self.settle)
            after = yield from tags.read(target)
            if after == value:
                return ClaimOutcome(warning=found.takeover(target.key, self.rc.journal.host)
                                    if found.verdict is Verdict.STALE else None)
            if after:  # another run wrote after us: its claim stands
                del self.held[target.key]
                return ClaimOutcome(f"{self._judge(after).refusal(target.key)}, written at the "
                                    "same time as this run's")
            # Not shown yet (AWS is eventually consistent), or removed: write it again.
        return ClaimOutcome(f"{target.key}: its claim tag {CLAIM_TAG} did not show after "
                            f"{ROUNDS} writes; refused")

    def _check_facts(self, runners: list[TargetRunner]) -> list[TargetRunner]:
        """Dry run: the claim tags as inspection read them; nothing is written."""
        kept = []
        for runner in runners:
            key = runner.target.key
            found = self._judge((runner.state.facts.get("tags") or {}).get(CLAIM_TAG))
            if found.verdict in (Verdict.HELD, Verdict.UNREADABLE):
                refuse(runner, found.refusal(key))
                continue
            if found.verdict is Verdict.STALE:
                self._notice("info", found.takeover(key, self.rc.journal.host).replace(
                    "took over", "a run would take over", 1))
            kept.append(runner)
        return kept

    # ---- while the run lives ---------------------------------------------------------

    def _pump(self) -> float | None:
        """Renew when due (a keepalive pump: it wakes the scheduler, it is not progress)."""
        due = self._next_renewal
        if due is None or self._renewals or self.rc.clock.now() < due:
            return due
        began = self.rc.clock.now()
        value = self._claim(self.rc.now() + timedelta(seconds=self.ttl))
        for key, (target, old) in list(self.held.items()):
            tags = CLAIM_TAGS[target.kind]
            if self.finished(key):
                del self.held[key]
                self._spawn(target, "remove", _lost_reply_ok(tags.remove(target, old)))
            else:
                self._renewals += 1
                self._spawn(target, "renew", self._renew_one(target, tags, value))
        self._next_renewal = began + self.ttl / 3 if self.held else None
        return self._next_renewal

    def _renew_one(self, target: Target, tags: ClaimTags, value: str) -> Generator[Any, Any, None]:
        try:
            found = self._judge((yield from tags.read(target)))
            if found.verdict in (Verdict.OURS, Verdict.FREE):
                yield from _lost_reply_ok(tags.write(target, value))
                self.held[target.key] = (target, value)
                return
            del self.held[target.key]
            why = (f"lost its claim: {found.refusal(target.key)}" if found.claim is None else
                   f"lost its claim to run {found.claim.run_id} (pid {found.claim.pid} on "
                   f"{found.claim.host}, until {stamp(found.claim.until)})")
            self.rc.lost[target.key] = why
            self._notice("error", f"{target.key}: {why}; no further step starts on it")
        finally:
            self._renewals -= 1

    # ---- the end ---------------------------------------------------------------------

    def release(self, keep: Iterable[str] = (), done_before: Iterable[Target] = ()) -> None:
        """Remove this run's claims, but those on ``keep`` (targets left mid-way: their
        claims expire), and its registry entry; also the claims an earlier process of the
        run may have left on ``done_before`` (targets it finished: it was killed before it
        removed their claims)."""
        kept = set(keep)
        self._next_renewal = None
        try:
            for key, (target, value) in list(self.held.items()):
                if key not in kept:
                    del self.held[key]
                    self._spawn(target, "remove",
                                _lost_reply_ok(CLAIM_TAGS[target.kind].remove(target, value)))
            for target in self._left_behind(done_before):
                self._spawn(target, "remove", self._remove_ours(target))
            self.rc.scheduler.run()
            self.rc.journal.commit()
        finally:
            self.abandon()

    def _left_behind(self, targets: Iterable[Target]) -> list[Target]:
        """Of ``targets``, those whose latest journaled claim call is not a removal AWS
        confirmed: a claim of this run may still be on them."""
        latest = self.rc.journal.latest_calls(self.rc.run_id, CALLS_PREFIX)
        out = []
        for target in targets:
            call = latest.get(CALLS_PREFIX + target.key)
            if call is not None and target.key not in self.held and not (
                    call.step_id == "remove" and call.status == "ok"):
                out.append(target)
        return out

    def _remove_ours(self, target: Target) -> Generator[Any, Any, None]:
        """Remove the claim on ``target`` if it is this run's (an earlier process wrote it)."""
        tags = CLAIM_TAGS[target.kind]
        found = self._judge((yield from tags.read(target)))
        if found.verdict is Verdict.OURS:
            yield from _lost_reply_ok(tags.remove(target, found.value))

    def abandon(self) -> None:
        """The run stops working here (also after a crash): free its registry entry;
        its claim tags stay, to expire or be taken back by ``resume``. Never raises (it
        runs while a crash is being raised): a failure is said, and the entry is then
        freed once this process is gone."""
        if not self._registered:
            return
        self._registered = False
        try:
            self.registry.release(self.rc.run_id, self.rc.journal.pid)
        except Exception as exc:
            self._notice("warning", f"could not remove this run from the run registry: {exc}")
