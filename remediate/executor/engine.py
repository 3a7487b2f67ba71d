"""The executor: a playbook across its targets, paced, batched, journaled, resumable.

A run goes: lock the targets in the journal and in the host's registry of live
runs -> inspect every target and judge its findings (refused targets end
``refused``) -> claim the targets in AWS (:mod:`remediate.executor.claiming`) ->
either plan every step (dry run, with an estimate of the real run's duration) or
run the steps in guarded batches (canary first, ``confirm`` after it, up to
``concurrency`` targets at a time, a failure budget) -> ``finish()`` every run
service (the rescue pool's cleanup), always, also after failures and Ctrl-C ->
release the claims and locks.

Ctrl-C is the caller's business: its signal handler calls :meth:`request_stop`,
which only sets a counter and wakes the scheduler (safe in a signal handler).
First request: no new step starts; in-flight steps finish (or time out);
targets that got past a mutating call are rolled back, the others end
``interrupted`` and ``resume`` continues them. Second request: rollback steps
stop starting too, waits are abandoned (a call already sent is still awaited and
journaled), and the targets stay journaled mid-way for ``resume``; so does the
cleanup: the run services' ``finish()`` (minutes of detaching and terminating
rescue instances) is left to ``resume``, which re-creates the services the journal
names and finishes them. The result is marked ``interrupted`` (the CLI exits 130).

If the executor itself fails (a bug, an unhandled KeyboardInterrupt, the process
being killed) it stops at once: no cleanup, locks left to go stale; the journal
holds what ``resume`` needs (:mod:`remediate.executor.resume`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remediate.actions.contract import RunService, Target
from remediate.aws.apis import Bucket
from remediate.aws.principal import Attacher
from remediate.aws.ratelimit import RateLimiter
from remediate.aws.retry import RetryPolicy
from remediate.claims.registry import HostRegistry
from remediate.clock import Clock
from remediate.executor.calls import CallLayer, ClientLookup
from remediate.executor.claiming import MIDWAY, TargetClaims
from remediate.executor.cleanup import finish_services
from remediate.executor.context import RunContext
from remediate.executor.estimate import Estimate, estimate
from remediate.executor.events import (
    AlarmStopped,
    EventBus,
    Forecasted,
    Interrupted,
    Notice,
    PermissionChecked,
    RunFinished,
    RunStarted,
)
from remediate.executor.guards import check_max_targets
from remediate.executor.io_pool import io_workers
from remediate.executor.journal_events import publish_journaled
from remediate.executor.permission_probe import probe_permissions
from remediate.executor.planning import plan_target
from remediate.executor.poller import Poller
from remediate.executor.preflight_policy import PreflightPolicy
from remediate.executor.result import RunResult
from remediate.executor.rollout import Confirm, Rollout
from remediate.executor.runtime import Gates, Services, handle_sleeps
from remediate.executor.scheduler import Abandoned, Caller, Scheduler, Task
from remediate.executor.steps import failure_text
from remediate.executor.target_runner import TargetRunner
from remediate.forecast.model import (
    ASSUMPTIONS,
    FleetModel,
    Forecast,
    ForecastFailed,
    fleet_model,
)
from remediate.journal import FINISHED_STATUSES, Journal, RunRecord, TargetRecord
from remediate.kinds import KINDS
from remediate.language.model import Playbook

if TYPE_CHECKING:
    from remediate.executor.alarm_watch import AlarmFiring, AlarmWatch
    from remediate.executor.leasing import TargetLeases

Forecaster = Callable[[FleetModel], Forecast]


def playbook_sha256(playbook: Playbook) -> str:
    """The hash of the text the playbook was loaded from, else of its file ("": none)."""
    if playbook.text:
        return hashlib.sha256(playbook.text.encode("utf-8")).hexdigest()
    return file_sha256(playbook.source)


def file_sha256(path: str) -> str:
    """The hash of a file's bytes ("": no such file), as older journals kept it."""
    file = Path(path)
    return hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else ""


class Executor:
    def __init__(
        self,
        playbook: Playbook,
        targets: Sequence[Target],
        *,
        clients: ClientLookup,
        clock: Clock,
        bus: EventBus,
        journal: Journal,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        accepted: frozenset[str] | set[str] = frozenset(),
        dry_run: bool = False,
        concurrency: int | None = None,
        rate_limits: Mapping[str, Bucket] | None = None,
        confirm: Confirm | None = None,
        workers: int | None = None,
        batch_window: float = 0.0,
        fresh_poll_gap: float = 1.0,
        retry: RetryPolicy | None = None,
        inspect_actions: Mapping[str, str] | None = None,
        prior: Mapping[str, TargetRecord] | None = None,
        leases: TargetLeases | None = None,
        registry: HostRegistry | None = None,
        approved: Mapping[str, Mapping[str, Any]] | None = None,
        alarms: AlarmWatch | None = None,
        forecaster: Forecaster | None = None,
        attacher: Attacher | None = None,
    ) -> None:
        """``clients(account, region, service)`` gives a boto3 client; ``confirm`` is asked
        after the canary batch (None: go on without asking); ``inspect_actions`` overrides
        the kinds' inspect actions; ``prior`` is the journal's state of a run being
        resumed (see :func:`remediate.executor.resume.resuming`); ``leases``: a shared
        lease table (``--lock-table``) locking the targets besides the journal;
        ``registry``: the host's registry of live runs (default: the user's, see
        :func:`remediate.claims.registry.state_dir`); ``approved``: ``run --plan``'s pinned
        facts per target key (journaled with the options, so ``resume`` checks them too);
        ``alarms``: ``--stop-on-alarm``'s watch (checked already), which stops starting
        targets when one fires; ``forecaster``: a dry run's estimate by rehearsal
        (:func:`remediate.forecast.child.forecast`; None: from the API rates only,
:mod:`remediate.executor.estimate`); ``workers``: I/O threads (None: by the places the
        targets are in, :func:`remediate.executor.io_pool.io_workers`); ``attacher``: the
        role that will call AttachVolume, whose KMS key access inspection judges (None:
        the operator)."""
        self.playbook = playbook
        self.targets = tuple(targets)
        self.confirm = confirm
        self.forecaster = forecaster
        self.concurrency = concurrency or playbook.execution.concurrency
        self.resuming = prior is not None
        self.prior = dict(prior or {})
        self._stop_requests = 0
        self.limits = {**playbook.execution.rate_limits, **(rate_limits or {})}
        inspect = dict(inspect_actions or {k: v.inspect_action for k, v in KINDS.items()})
        self.options = {
            "concurrency": self.concurrency, "accepted": sorted(accepted),
            "rate_limits": {k: [b.capacity, b.refill] for k, b in self.limits.items()},
            "batch_window": batch_window, "inspect_actions": inspect,
        }
        if approved is not None:
            self.options["approved"] = {key: dict(facts) for key, facts in approved.items()}
        self.workers = workers or io_workers(self.targets)
        scheduler = Scheduler(clock, self.workers)
        limiter = RateLimiter(clock, self.limits)
        calls = CallLayer(scheduler, clients, limiter, journal, bus, run_id, dry_run=dry_run,
                          retry=retry, batch_window=batch_window)
        Poller(scheduler, playbook.execution.poll_interval, fresh_poll_gap)
        handle_sleeps(scheduler)
        gates = Gates(scheduler)
        scheduler.on_stall = gates.fail_parked
        scheduler.before_wait = journal.commit_stale
        scheduler.add_pump(self._watch_stop)
        self.leases = leases if not dry_run else None
        lost: dict[str, str] = {}
        if self.leases is not None:
            self.leases.attach(scheduler, bus, lost)
            if confirm is not None:
                confirm = self.confirm = self.leases.renewing(confirm)
        self.limiter = limiter
        self.rc = RunContext(
            run_id=run_id, playbook=playbook, params=dict(params or {}),
            accepted=frozenset(accepted), dry_run=dry_run, clock=clock, bus=bus,
            journal=journal, scheduler=scheduler, calls=calls, gates=gates,
            services=Services(run_id, journal),
            policy=PreflightPolicy.for_playbook(playbook, params or {}, frozenset(accepted),
                                                attacher),
            inspect_actions=inspect, lost=lost, approved=approved)
        self.alarms = alarms if not dry_run else None
        if self.alarms is not None:
            self.alarms.attach(scheduler, bus, self._halt)
            self.options["stop_on_alarm"] = list(self.alarms.names)  # resume watches them too
        self.runners = {t.key: TargetRunner(self.rc, t, self.prior.get(t.key))
                        for t in self.targets}
        self.claims = TargetClaims(self.rc, registry or HostRegistry.default(journal.host),
                                   self._done_with)
        self._tasks: dict[Task, TargetRunner] = {}
        self._rollout = Rollout(self.rc, self.concurrency, confirm, self._spawn)
        if self.alarms is not None:
            self._rollout.before_batch = self.alarms.read_now
        self._estimate: Estimate | None = None
        self._permissions: tuple[PermissionChecked, ...] = ()
        # Dry runs: targets whose steps were planned (their status in the result).
        self._planned: set[str] = set()
        self._cleanup_errors: list[str] = []

    # ---- control ----------------------------------------------------------------

    def request_stop(self) -> None:
        """Ctrl-C. Safe from a signal handler: it only counts and wakes the scheduler."""
        self._stop_requests += 1
        self.rc.scheduler.wake()

    def _watch_stop(self) -> float | None:
        rc = self.rc
        while rc.stop_level < min(self._stop_requests, 2):
            rc.stop_level += 1
            doing = tuple(sorted(f"{r.target.key}: {r.state.doing}"
                                 for r in self._tasks.values()))
            rc.bus.publish(Interrupted(doing, second=rc.stop_level >= 2))
            if rc.stop_level >= 2:
                for task in list(self._tasks):
                    rc.scheduler.interrupt(task, Abandoned("Ctrl-C twice"))
        return None

    def _halt(self, firing: AlarmFiring) -> None:
        """An alarm of ``--stop-on-alarm`` fired: no new target starts (the rollout asks
        ``rc.halted``); those in flight finish."""
        self.rc.halted = firing.text()
        self.rc.bus.publish(AlarmStopped(firing.alarm, firing.account, firing.region,
                                         firing.reason, len(self._tasks)))

    # ---- the run ----------------------------------------------------------------

    def run(self) -> RunResult:
        rc = self.rc
        check_max_targets(self.playbook.guards, len(self.targets))
        started = rc.now()
        self._record_run(started.isoformat())
        rc.bus.publish(RunStarted(rc.run_id, self.playbook.source, rc.dry_run, started,
                                  self.targets, tuple(s.id for s in self.playbook.steps)))
        if self.resuming:
            publish_journaled(rc, (r.record for r in self.runners.values() if r.record))
        try:
            pending = self._lock([r for r in self.runners.values() if not self._finished(r)],
                                 started)
            self._inspect(pending)
            eligible = self.claims.claim_in_aws([r for r in pending if r.status is None])
            if rc.dry_run:
                self._plan(eligible)
            else:
                self._rollout.run(eligible, done=[r.record for r in self.runners.values()
                                                  if r.record and r.record.finished])
        except BaseException:
            # A crash of the executor itself (or an unhandled KeyboardInterrupt): stop
            # working at once; the journal has what `remediate resume` needs.
            rc.journal.commit()
            rc.journal.set_run_status(rc.run_id, "crashed", rc.now())
            rc.scheduler.close()
            self._release_finished_leases()
            self.claims.abandon()
            raise
        try:
            if rc.stop_level >= 2:
                # Stop waiting: no cleanup calls, no claim removals (they expire, and
                # `resume` takes them back).
                self._leave_cleanup()
                if self.claims.held:
                    rc.bus.publish(Notice(
                        "warning", f"Ctrl-C twice: the claim tags on {len(self.claims.held)} "
                                   "target(s) stay until they expire or `remediate resume "
                                   f"{rc.journal.path}` removes them"))
                self.claims.release(keep=list(self.runners))
            else:
                self._cleanup_errors = finish_services(rc, self.targets[0].kind
                                                       if self.targets else "ec2-instance")
                self.claims.release((k for k, r in self.runners.items() if self._midway(r)),
                                    done_before=[r.target for r in self.runners.values()
                                                 if self._finished(r)])
        finally:
            self.claims.abandon()
            rc.journal.set_run_status(rc.run_id, "interrupted" if rc.stop_level else "finished",
                                      rc.now())
            if not rc.dry_run:
                rc.journal.release_locks(rc.run_id)
            rc.scheduler.close()
            if self.leases is not None:
                self.leases.release()
        result = self._result()
        rc.bus.publish(RunFinished(rc.run_id, rc.now(), result.summary,
                                   self._estimate.seconds if self._estimate else None))
        return result

    def _leave_cleanup(self) -> None:
        """Ctrl-C twice: stop waiting, cleanup included; the journal names the services
        (rescue pools) whose ``finish()`` ``resume`` runs."""
        left: dict[str, list[str]] = {}
        for account, region, cls in self.rc.services.places:
            if cls.finish is not RunService.finish:  # it has something to clean up
                what = cls.cleanup or f"{cls.__name__}'s cleanup"
                left.setdefault(what, []).append(f"{account}/{region}")
        for cleanup, places in left.items():
            self.rc.bus.publish(Notice(
                "warning", f"Ctrl-C twice: {cleanup} in {', '.join(places)} is left to "
                           f"`remediate resume {self.rc.journal.path}`"))

    def _finished(self, runner: TargetRunner) -> bool:
        return runner.record is not None and runner.record.finished

    def _done_with(self, key: str) -> bool:
        """Whether this run is done with target ``key`` (its claim may go)."""
        return self.runners[key].status in FINISHED_STATUSES

    @staticmethod
    def _midway(runner: TargetRunner) -> bool:
        """Left half-done (Ctrl-C twice): its claim stays until it expires or ``resume``."""
        return runner.status == "interrupted" and runner.phase in MIDWAY and runner.mutated

    def _record_run(self, started: str) -> None:
        rc = self.rc
        if self.resuming:
            rc.journal.set_run_status(rc.run_id, "running")
            rc.services.restore()
            return
        rc.journal.begin_run(RunRecord(
            rc.run_id, self.playbook.source, playbook_sha256(self.playbook), dict(rc.params),
            self.options, self.targets, rc.dry_run, "running", rc.journal.pid, rc.journal.host,
            started, playbook_text=self.playbook.text or None))

    def _lock(self, runners: list[TargetRunner], at: datetime) -> list[TargetRunner]:
        """Runners whose targets this run holds (in the journal, on this host, in the lease
        table); the others end refused, naming the holder."""
        if self.rc.dry_run:
            return self.claims.hold_on_host(runners, at)
        started = at.isoformat()
        outcome = self.rc.journal.lock_targets(self.rc.run_id, [r.target.key for r in runners],
                                               started)
        for key, holder in outcome.taken_over.items():
            self.rc.bus.publish(Notice("warning", f"{key}: took over a stale lock of run "
                                                  f"{holder.run_id} (pid {holder.pid} on "
                                                  f"{holder.host} is gone)"))
        for key, holder in outcome.refused.items():
            self.runners[key].finish("refused", f"{key} is {holder.describe()}")
        runners = self.claims.hold_on_host(
            [r for r in runners if r.target.key not in outcome.refused], at)
        if self.leases is None:
            return runners
        leased = self.leases.lock(self.rc.run_id, [r.target for r in runners], started)
        for key, holder in leased.taken_over.items():
            self.rc.bus.publish(Notice("warning", f"{key}: took over an expired lease of run "
                                                  f"{holder.run_id} (pid {holder.pid} on "
                                                  f"{holder.host}) in lock table "
                                                  f"{self.leases.name}"))
        for key, holder in leased.refused.items():
            self.runners[key].finish("refused", f"{key} is {holder.describe()} (lock table "
                                                f"{self.leases.name})")
        return [r for r in runners if r.target.key not in leased.refused]

    def _release_finished_leases(self) -> None:
        """After a crash: give back the leases of finished targets only (the others may be
        mid-way; their leases expire, or ``resume`` on this host takes them back)."""
        if self.leases is None:
            return
        done = [k for k, r in self.runners.items()
                if r.status is not None and r.status != "interrupted"]
        try:
            self.leases.release(done)
        except Exception as exc:  # never hide the crash being raised
            self.rc.bus.publish(Notice("warning", f"could not release leases: {exc}"))

    def _spawn(self, runner: TargetRunner, gen: Any, on_done: Callable[[], None]) -> None:
        """Run ``gen`` as ``runner``'s task; a crash in it fails the target, not the run."""
        target = runner.target

        def done(_result: Any, error: BaseException | None) -> None:
            self._tasks.pop(task, None)
            if error is not None:
                text = failure_text("executor", error)[0]
                self.rc.bus.publish(Notice("error", f"{target.key}: {text}"))
                if runner.status is None:
                    runner.finish("failed", text)
            on_done()

        task = self.rc.scheduler.spawn(target.key, gen,
                                       Caller(target.account, target.region, target.key), done)
        runner.state.task = task
        self._tasks[task] = runner

    def _inspect(self, runners: list[TargetRunner]) -> None:
        for runner in runners:
            if runner.record is None or runner.record.facts is None:
                self._spawn(runner, runner.inspection(), lambda: None)
        self.rc.scheduler.run()
        self.rc.journal.commit()

    def _plan(self, runners: list[TargetRunner]) -> None:
        plans = [(r.state, plan_target(self.rc, r.state)) for r in runners]
        self._planned = {r.target.key for r in runners}
        self._estimate = estimate([(s.target, apis) for s, apis in plans], self.limiter,
                                  self.concurrency)
        if not self.rc.stop_level:
            self._permissions = tuple(probe_permissions(self.rc, plans))
        if self.forecaster is not None and not self.rc.stop_level:
            self._forecast(self.forecaster)

    def _forecast(self, forecaster: Forecaster) -> None:
        """Replace the rate-based estimate with a rehearsal of the run on the fleet
        inspection found; if it cannot run, say why and keep the rate-based one."""
        rc = self.rc
        model = fleet_model(
            ((r.target, r.state.facts) for r in self.runners.values() if r.state.facts),
            playbook=self.playbook.source, playbook_text=self.playbook.text or None,
            params=dict(rc.params), accepted=tuple(sorted(rc.accepted)),
            concurrency=self.concurrency,
            rate_limits={k: (b.capacity, b.refill) for k, b in self.limits.items()})
        try:
            found = forecaster(model)
        except ForecastFailed as exc:
            rc.bus.publish(Notice("warning", f"the run could not be rehearsed ({exc}); the "
                                             "estimate is from the API rates alone"))
            return
        self._estimate = Estimate(found.seconds, calls=found.calls, rehearsed=True)
        rc.bus.publish(Forecasted(found.seconds, tuple(found.calls.items()), found.targets,
                                  ASSUMPTIONS))

    # ---- the end ------------------------------------------------------------------

    def _result(self) -> RunResult:
        statuses: dict[str, str] = {}
        errors: dict[str, str] = {}
        for key, runner in self.runners.items():
            record = runner.record
            status = runner.status or (record.status if record else None) or (
                "planned" if key in self._planned else "interrupted")
            statuses[key] = status
            error = runner.error if runner.status else (record.error if record else None)
            if error:
                errors[key] = error
        return RunResult(
            self.rc.run_id, self.rc.dry_run, statuses, errors,
            interrupted=self.rc.stop_level > 0, budget_exhausted=self._rollout.budget_exhausted,
            declined=self._rollout.declined,
            stopped_by_alarm=self.rc.halted if self._rollout.left_by_alarm else None,
            estimate=self._estimate, cleanup_errors=tuple(self._cleanup_errors),
            api_calls=dict(self.rc.calls.sent), refused_mutations=self.rc.calls.refused,
            permissions=self._permissions)
