"""Chaos scenarios: one run of a built-in playbook on a sandbox server whose AWS loses
replies and throttles, interrupted again and again and resumed after each interruption.

A scenario is drawn from a seed (:meth:`Scenario.draw`): the fleet, the fault rates, and
:data:`KILLS` SIGKILLs plus one Ctrl-C and one Ctrl-C twice, in a random order. Each
interruption hits the process at work then (`remediate run`, later `remediate resume`)
right after the n-th mutating call of a kind (forward or rollback) the journal records
from the process's start, n drawn too; the next process is `remediate resume`. Once
the interruptions are spent (or the run has ended), `resume` runs until the run ends,
at most :data:`FINAL_RESUMES` times. What it must leave behind is
:mod:`chaos_checks`' business.

A seed fixes the scenario, not the processes' timing: a replay interrupts at the same
calls of the journal, though what AWS has answered by then may differ.
"""

from __future__ import annotations

import contextlib
import random
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cli_support import OFFLINE_REPAIR, WORKSPACES_RECOVER
from e2e_support import InThreadServer, Remediate, journal_rows, last_call_id, remediate, wait_for
from remediate.sandbox import Bucket, Durations, FleetSpec, Sandbox, ThrottlePolicy
from report_checks import disagreements, report_options

KILLS = 20
FINAL_RESUMES = 4
RUN_TIMEOUT = 240.0
"""Real seconds a process may take to reach its interruption point, or to end."""
EXIT_CODES = (0, 2, 130)
"""What a process that ends by itself may exit with (1 or 3 are bugs here)."""
PLAYBOOKS = {"offline-repair": OFFLINE_REPAIR, "workspaces": WORKSPACES_RECOVER}
ACCEPT_WORKSPACES = ("--accept", "workspace-restore-data-loss",
                     "--accept", "workspace-rebuild-data-loss")
# The claim tags' calls are spared the random throttles: a throttled claim write is
# retried, and on a clock 100 times faster than the real one the few real milliseconds
# its first attempt spent on the wire count as seconds, past the bound the claim is
# trusted within (remediate.executor.claiming): every target it claims would be refused
# for a race that cannot happen. Claims under throttling are tested in-process
# (tests/executor/test_claims.py), where time on the wire is nothing.
CLAIM_TAG_CALLS = frozenset({"ec2:CreateTags", "ec2:DescribeTags", "ec2:DeleteTags",
                             "workspaces:CreateTags", "workspaces:DescribeTags",
                             "workspaces:DeleteTags"})
# Calls whose bucket in AWS may be smaller than the one the tool paces to (other tools
# in the account spend it too): two of them, drawn per scenario, get a small one.
CONTENDED = {"offline-repair": ("ec2:AttachVolume", "ec2:DetachVolume", "ec2:StopInstances",
                                "ec2:StartInstances", "ec2:ModifyInstanceAttribute",
                                "ec2:CreateSnapshot", "ssm:SendCommand"),
             "workspaces": ("workspaces:RebootWorkspaces", "workspaces:StartWorkspaces",
                            "workspaces:DescribeWorkspaces")}


# Which journaled mutating calls an interruption counts (SQL on the calls table): those of
# the playbook's steps, of its rollback steps, or any (the claim tags' too).
CALL_KINDS = {"forward": "rollback = 0 AND target_key NOT LIKE 'claim:%'",
              "rollback": "rollback = 1", "any": "1"}


@dataclass(frozen=True)
class Interruption:
    """``signal`` ("SIGKILL", "Ctrl-C" or "Ctrl-C twice") right after the ``after``-th
    mutating call of its ``kind`` (see :data:`CALL_KINDS`) journaled since the process
    started; a second Ctrl-C ``then`` mutating calls (of any kind) after the first."""

    signal: str
    kind: str
    after: int
    then: int = 0

    def __str__(self) -> str:
        text = f"{self.signal} after {self.kind} call {self.after}"
        return text + (f", again {self.then} calls later" if self.signal == "Ctrl-C twice"
                       else "")


@dataclass(frozen=True)
class Scenario:
    seed: int
    playbook: str
    fleet: FleetSpec
    clock_factor: float
    durations: Durations
    lost_replies: float
    """The share of mutating calls that take effect and answer 500 InternalError."""
    throttle: ThrottlePolicy
    interruptions: tuple[Interruption, ...]

    @classmethod
    def draw(cls, seed: int, playbook: str) -> Scenario:
        rng = random.Random(seed)
        # Listings lag behind creates, as AWS's eventually consistent APIs may.
        durations = Durations(listing_lag=rng.choice((0.0, 5.0, 15.0)))
        # The clock runs 100 times faster than the real one: fast enough for a scenario
        # of ~25 processes, slow enough that a process starved of CPU for a few seconds
        # (the suite runs on every core) does not time a step out.
        if playbook == "offline-repair":
            # BitLocker roots fail the repair on the rescue instance: real rollbacks. Ten
            # targets or more allow one failure (10%); a second one (a scenario in four)
            # spends the failure budget, and the targets not started yet are skipped.
            fleet = FleetSpec(plain=rng.randint(9, 11), bitlocker=rng.choice((1, 1, 1, 2)),
                              azs=rng.randint(1, 2))
            # ~13 forward calls per target: interruptions spread over most of the run.
            clock_factor, rollbacks, spacing = 100.0, True, 6
        else:
            fleet = FleetSpec(plain=0, workspaces=rng.randint(9, 12), azs=1)
            # No rollback steps in this playbook; 2 or 3 forward calls per WorkSpace.
            clock_factor, rollbacks, spacing = 100.0, False, 2
            # Quicker than AWS's (a rebuild takes up to an hour), still longer than the
            # two minutes a request is given to show.
            durations = replace(durations, workspace_reboot=150.0, workspace_start=150.0,
                                workspace_restore=300.0, workspace_rebuild=600.0)
        signals = ["SIGKILL"] * KILLS + ["Ctrl-C", "Ctrl-C twice"]
        rng.shuffle(signals)
        kinds, weights = ((["forward", "rollback", "any"], [55, 30, 15]) if rollbacks
                          else (["forward", "any"], [80, 20]))
        interruptions = tuple(
            Interruption(name, rng.choices(kinds, weights)[0], rng.randint(1, spacing),
                         rng.randint(0, 3)) for name in signals)
        # AWS's EC2 buckets, two APIs' smaller than the tool assumes, and a few throttles
        # at random on top (AWS's own hiccups).
        small = {api: Bucket(rng.randint(2, 4), rng.choice((0.5, 1.0)))
                 for api in rng.sample(CONTENDED[playbook], 2)}
        throttle = ThrottlePolicy(error_rate=round(rng.uniform(0.01, 0.04), 3), seed=seed,
                                  ec2_defaults=True, buckets=small, spare=CLAIM_TAG_CALLS)
        return cls(seed, playbook, fleet, clock_factor, durations,
                   lost_replies=round(rng.uniform(0.1, 0.3), 2), throttle=throttle,
                   interruptions=interruptions)

    def describe(self) -> str:
        buckets = ", ".join(f"{api} {b.capacity:g}/{b.refill_per_second:g}s"
                            for api, b in self.throttle.buckets.items())
        return (f"{self.playbook}, fleet {self.fleet}, listing lag "
                f"{self.durations.listing_lag:g}s, lost replies {self.lost_replies}, "
                f"throttled at random {self.throttle.error_rate} and by AWS's EC2 buckets "
                f"({buckets}), {len(self.interruptions)} interruptions")

    def run_args(self) -> list[str]:
        extra = ACCEPT_WORKSPACES if self.playbook == "workspaces" else ()
        return [PLAYBOOKS[self.playbook], "--yes", *extra]

    def inject_faults(self, sandbox: Sandbox) -> None:
        sandbox.lose_replies("*", self.lost_replies, seed=self.seed)
        sandbox.set_throttle(self.throttle)


@dataclass
class Ended:
    """A process that ended by itself (not killed): what it said, and how."""

    name: str
    code: int
    stderr: str
    reports: list[str]
    """Where its reports disagree with the journal (empty: they agree)."""


@dataclass
class ChaosRun:
    """Drives a scenario's processes against ``server``; ``history`` says what happened."""

    scenario: Scenario
    server: InThreadServer
    folder: Path
    history: list[str] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)
    processes: int = 0
    kills: int = 0

    @property
    def journal(self) -> Path:
        return self.folder / "journal.sqlite"

    def play(self) -> None:
        for interruption in self.scenario.interruptions:
            if self.run_ended():
                self.history.append(f"the run ended: {interruption} not used")
                continue
            self._interrupt(interruption)
        for _ in range(FINAL_RESUMES):
            if self.run_ended():
                return
            process, reports = self._start()
            self._ended(process, reports, process.finish(RUN_TIMEOUT))

    def statuses(self) -> dict[str, int]:
        """How many targets ended with each status (and why, for refusals)."""
        rows = journal_rows(self.journal, "SELECT status, error FROM targets")
        return dict(Counter(f"{status} ({error.split(': ', 1)[-1][:60]}...)"
                            if status == "refused" else str(status) for status, error in rows))

    def run_ended(self) -> bool:
        """The run finished, every target with it (none left interrupted for a resume)."""
        finished = journal_rows(self.journal, "SELECT status FROM runs") == [("finished",)]
        return finished and not journal_rows(
            self.journal, "SELECT 1 FROM targets WHERE status IS NULL OR phase != 'done'")

    # ---- processes ----------------------------------------------------------------------

    def _start(self) -> tuple[Remediate, dict[str, Path]]:
        self.processes += 1
        name = f"p{self.processes:02d}"
        options, reports = report_options(self.folder, name)
        args = (["run", *self.scenario.run_args(), "--journal", str(self.journal)]
                if self.processes == 1 else ["resume", str(self.journal)])
        process = remediate([*args, "--no-progress", *options],
                            self.server.env(self.folder / "crashes"), self.folder / f"{name}.log")
        return process, reports

    def _ended(self, process: Remediate, reports: dict[str, Path], code: int) -> None:
        name = process.log.stem
        stderr = process.stderr()
        self.history.append(f"{name} exited {code}")
        if code not in EXIT_CODES:
            raise AssertionError(f"{name} exited {code}:\n{stderr[-4000:]}")
        self.ended.append(Ended(name, code, stderr, disagreements(self.journal, reports, stderr)))

    def _interrupt(self, interruption: Interruption) -> None:
        mark = last_call_id(self.journal)
        process, reports = self._start()
        if interruption.kind == "rollback" and not self._rollback_ahead():
            interruption = replace(interruption, kind="forward")  # none would come soon
        reached = self._calls_journaled(process, mark, interruption.kind, interruption.after)
        if not reached:
            self.history.append(f"{process.log.stem}: ended before {interruption}")
            self._ended(process, reports, process.finish(RUN_TIMEOUT))
            return
        where = self._last_call()
        if interruption.signal == "SIGKILL":
            process.process.send_signal(signal.SIGKILL)
            process.process.wait()
            self.kills += 1
            self.history.append(f"{process.log.stem}: {interruption}: killed after {where}")
            return
        process.process.send_signal(signal.SIGINT)
        self.history.append(f"{process.log.stem}: {interruption}: Ctrl-C after {where}")
        if interruption.signal == "Ctrl-C twice":
            self._calls_journaled(process, last_call_id(self.journal), "any", interruption.then)
            with contextlib.suppress(ProcessLookupError):
                process.process.send_signal(signal.SIGINT)
            self.history.append(f"{process.log.stem}: Ctrl-C again after {self._last_call()}")
        self._ended(process, reports, process.finish(RUN_TIMEOUT))

    # ---- the journal, read while the process writes it ---------------------------------

    def _calls_journaled(self, process: Remediate, mark: int, kind: str, count: int) -> bool:
        """Wait until ``count`` mutating calls of ``kind`` (:data:`CALL_KINDS`) are journaled
        after call ``mark``; False if the process ended first."""
        sql = f"SELECT COUNT(*) FROM calls WHERE call_id > ? AND {CALL_KINDS[kind]}"

        def journaled() -> bool:
            rows = journal_rows(self.journal, sql, (mark,))
            return bool(rows) and int(rows[0][0]) >= count

        alive: Callable[[], bool] = lambda: process.process.poll() is None  # noqa: E731
        wait_for(lambda: not alive() or journaled(), RUN_TIMEOUT,
                 f"{count} more mutating calls in the journal", interval=0.01)
        return alive()

    def _rollback_ahead(self) -> bool:
        """Whether rollback calls come soon: a target is rolling back, or a BitLocker
        target (its repair fails) is on its way through the steps."""
        bitlocker = set(self.server.fleet.instance_ids("bitlocker"))
        rows = journal_rows(self.journal, "SELECT target_key, phase FROM targets")
        return any(phase in ("rollback", "stop-rollback")
                   or (phase == "steps" and key.rsplit("/", 1)[-1] in bitlocker)
                   for key, phase in rows)

    def _last_call(self) -> str:
        rows = journal_rows(self.journal, "SELECT call_id, operation, target_key, step_id, "
                                          "rollback FROM calls ORDER BY call_id DESC LIMIT 1")
        if not rows:
            return "no call"
        call_id, operation, key, step, rollback = rows[0]
        return (f"call {call_id} ({operation}, {key.rsplit('/', 1)[-1]}, "
                f"{'rollback ' if rollback else ''}step {step})")
