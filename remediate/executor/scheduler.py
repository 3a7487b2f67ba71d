"""One thread drives every task's generator; a small pool performs the I/O.

A *task* is a generator yielding requests (an action's run, a target's whole
pipeline, a poll). When it yields, it parks on a :class:`Ticket` handed to the
request's handler; whoever resolves the ticket (a completed API call, the poller,
a timer, an opened gate) makes the task runnable again. So a waiting target costs
no thread, and all waiting happens here, through the :class:`Clock`:

- runnable tasks run first, all of them, so calls issued in the same tick can be
  merged into one request by the pumps that run next;
- with calls in flight the scheduler waits for their completion (on a
  :class:`VirtualClock`, simulated time never moves while a call is in flight);
- on a VirtualClock it goes in lockstep: the answers of the calls in flight are
  taken together, once the last one is in, in the order the calls were sent. Which
  targets' calls meet in one merged request then depends on the simulated run
  alone, not on which I/O thread finished first, so two runs of one fleet make the
  same requests and ``plan``'s rehearsal makes the calls the run will make;
- with nothing runnable and nothing in flight it sleeps until the next timer, so
  on a VirtualClock a run over thousands of targets is a discrete-event
  simulation that never sleeps for real.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from remediate.clock import Clock, VirtualClock
from remediate.language.durations import format_duration

TaskGen = Generator[Any, Any, Any]
Done = Callable[[Any, BaseException | None], None]
_Completion = tuple[int, Done, Any, BaseException | None]
"""A call's answer: its place in the order calls were sent, whom to tell, result, error."""


class Cancelled(Exception):
    """Thrown into a parked task by the executor itself (never into an action)."""


class Expired(Cancelled):
    """The step's timeout passed."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"timed out after {format_duration(timeout)} (the step's timeout)")
        self.timeout = timeout


class Abandoned(Cancelled):
    """The operator pressed Ctrl-C twice: stop waiting, leave the step for resume."""


@dataclass
class Caller:
    """Who a task's calls are made for: where they go, and what the journal files them under."""

    account: str
    region: str
    target_key: str
    step_id: str = ""
    rollback: bool = False


class Task:
    __slots__ = ("caller", "gen", "interrupt", "name", "on_done", "parked_on", "ticket")

    def __init__(self, name: str, gen: TaskGen, caller: Caller, on_done: Done) -> None:
        self.name = name
        self.gen = gen
        self.caller = caller
        self.on_done = on_done
        self.ticket: Ticket | None = None
        self.parked_on: Any = None
        # Thrown in instead of the next value (a timeout or an abandonment).
        self.interrupt: BaseException | None = None


class Ticket:
    """A parked task's claim on one answer. The first resolution wins; later ones
    (a late call result after a timeout) are dropped."""

    __slots__ = ("done", "scheduler", "task")

    def __init__(self, scheduler: Scheduler, task: Task) -> None:
        self.scheduler = scheduler
        self.task = task
        self.done = False

    def resolve(self, value: Any) -> None:
        if not self.done:
            self.done = True
            self.scheduler.make_ready(self.task, value, None)

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done = True
            self.scheduler.make_ready(self.task, None, error)


class Timer:
    __slots__ = ("action", "cancelled", "when")

    def __init__(self, when: float, action: Callable[[], None]) -> None:
        self.when = when
        self.action = action
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


Handler = Callable[[Ticket, Any], None]
Pump = Callable[[], float | None]


def _next(heap: list[tuple[float, int, Timer]]) -> float | None:
    """When the first live timer of ``heap`` is due (cancelled ones are dropped here)."""
    while heap and heap[0][2].cancelled:
        heapq.heappop(heap)
    return heap[0][0] if heap else None


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _sooner(a: float, b: float | None) -> float:
    return a if b is None else min(a, b)


class Scheduler:
    def __init__(self, clock: Clock, workers: int = 16) -> None:
        self.clock = clock
        self._handlers: dict[type, Handler] = {}
        self._pumps: list[Pump] = []
        # Pumps that only keep something alive (lease renewal): their times bound the
        # waits, but a run waiting only on them is stalled, not waiting.
        self._keepalives: list[Pump] = []
        self._ready: deque[tuple[Task, Any, BaseException | None]] = deque()
        # Timers that make progress (sleeps, polls, retries) and guards (step timeouts):
        # a run whose only timers are guards is stalled, not waiting.
        self._timers: list[tuple[float, int, Timer]] = []
        self._guards: list[tuple[float, int, Timer]] = []
        self._stalls = (float("nan"), 0)
        self._seq = itertools.count()
        self._completions: queue.SimpleQueue[_Completion] = queue.SimpleQueue()
        # Lockstep (a VirtualClock): answers held until every call in flight is in.
        self._lockstep = isinstance(clock, VirtualClock)
        self._arrived: list[_Completion] = []
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="remediate-io")
        self.in_flight = 0
        self.live: set[Task] = set()
        self.on_stall: Callable[[], None] = lambda: None
        # Runs before the scheduler blocks (to flush the journal while nothing happens).
        self.before_wait: Callable[[], None] = lambda: None
        self.ticks = 0

    # ---- wiring ------------------------------------------------------------------

    def handle(self, kind: type, handler: Handler) -> None:
        self._handlers[kind] = handler

    def add_pump(self, pump: Pump, *, keepalive: bool = False) -> None:
        """``pump`` runs after every tick's tasks; it returns when it next needs to run.
        A ``keepalive`` pump is run in time too, but is not progress (see ``_keepalives``)."""
        (self._keepalives if keepalive else self._pumps).append(pump)

    def wake(self) -> None:
        """Safe from any thread (and from a signal handler): end the current wait."""
        self._wake.set()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # ---- tasks, timers, I/O --------------------------------------------------------

    def spawn(self, name: str, gen: TaskGen, caller: Caller, on_done: Done) -> Task:
        task = Task(name, gen, caller, on_done)
        self.live.add(task)
        self._ready.append((task, None, None))
        return task

    def make_ready(self, task: Task, value: Any, error: BaseException | None) -> None:
        self._ready.append((task, value, error))

    def interrupt(self, task: Task, error: BaseException) -> None:
        """Throw ``error`` into ``task`` now if it is parked, else at its next resumption."""
        if task not in self.live:
            return
        task.interrupt = error
        ticket = task.ticket
        if ticket is not None and not ticket.done:
            ticket.done = True
            self._ready.append((task, None, None))

    def at(self, when: float, action: Callable[[], None], *, guard: bool = False) -> Timer:
        """Run ``action`` at ``when``. A ``guard`` (a timeout) does not count as something
        the run is waiting for: parked tasks with only guards pending are stalled."""
        timer = Timer(when, action)
        heapq.heappush(self._guards if guard else self._timers, (when, next(self._seq), timer))
        return timer

    def io(self, work: Callable[[], Any], done: Done) -> None:
        """Run ``work`` on the pool; ``done(result, error)`` runs later on this thread."""
        self.in_flight += 1
        sent = next(self._seq)  # the scheduler's one sequence orders answers too

        def job() -> None:
            try:
                result: Any = work()
            except BaseException as exc:  # delivered to the scheduler thread, not lost
                self._completions.put((sent, done, None, exc))
            else:
                self._completions.put((sent, done, result, None))
            self._wake.set()

        self._pool.submit(job)

    # ---- the loop ------------------------------------------------------------------

    def run(self) -> None:
        """Run until no task is alive and no call is in flight."""
        while self.live or self.in_flight:
            self._wake.clear()
            self._drain_completions()
            if self._lockstep and self.in_flight:
                self._wake.wait()
                continue
            self._fire_timers(self._timers)
            self._fire_timers(self._guards)
            self._run_ready()
            wake_at = self._pump(self._pumps)
            keep = self._pump(self._keepalives)
            if self._ready:
                continue
            if not (self.live or self.in_flight):
                break
            progress = _earliest(_next(self._timers), wake_at)
            guard = _next(self._guards)
            self.before_wait()
            if self.in_flight:
                self._wait_for_io(_earliest(_earliest(progress, guard), keep))
            elif progress is not None:
                self.clock.sleep_until(_sooner(progress, keep), self._wake)
            elif self._stalled():
                continue
            elif guard is not None:
                self.clock.sleep_until(_sooner(guard, keep), self._wake)
            else:
                names = ", ".join(sorted(t.name for t in self.live)[:10])
                raise RuntimeError(f"scheduler stalled: {len(self.live)} task(s) parked "
                                   f"with nothing that could wake them ({names})")

    def _stalled(self) -> bool:
        """Let ``on_stall`` fail what can never be answered; True if that woke a task.

        An action that keeps parking again after such a failure gets a bounded number
        of tries at one instant; then time moves on to its timeout."""
        now = self.clock.now()
        at, count = self._stalls
        self._stalls = (now, count + 1 if at == now else 1)
        if self._stalls[1] > 100:
            return False
        self.on_stall()
        return bool(self._ready)

    def _wait_for_io(self, deadline: float | None) -> None:
        if isinstance(self.clock, VirtualClock) or deadline is None:
            # Simulated time must not move while a call is in flight.
            self._wake.wait()
        else:
            self.clock.sleep_until(deadline, self._wake)

    def _drain_completions(self) -> None:
        arrived = self._arrived
        while True:
            try:
                arrived.append(self._completions.get_nowait())
            except queue.Empty:
                break
            self.in_flight -= 1
        if self._lockstep and self.in_flight:
            return
        if self._lockstep:
            arrived.sort(key=lambda completion: completion[0])
        self._arrived = []
        for _, done, result, error in arrived:
            done(result, error)

    def _fire_timers(self, heap: list[tuple[float, int, Timer]]) -> None:
        now = self.clock.now()
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if not timer.cancelled:
                timer.action()

    def _run_ready(self) -> None:
        ready = self._ready
        while ready:
            task, value, error = ready.popleft()
            self._step(task, value, error)
        self.ticks += 1

    def _pump(self, pumps: list[Pump]) -> float | None:
        wake_at: float | None = None
        for pump in pumps:
            when = pump()
            if when is not None and (wake_at is None or when < wake_at):
                wake_at = when
        return wake_at

    def _step(self, task: Task, value: Any, error: BaseException | None) -> None:
        if task.interrupt is not None:
            value, error, task.interrupt = None, task.interrupt, None
        task.ticket = None
        task.parked_on = None
        try:
            request = task.gen.throw(error) if error is not None else task.gen.send(value)
        except StopIteration as stop:
            self._finish(task, stop.value, None)
            return
        except Exception as exc:  # the task's own failure: its on_done decides
            self._finish(task, None, exc)
            return
        ticket = Ticket(self, task)
        task.ticket = ticket
        task.parked_on = request
        handler = self._handlers.get(type(request))
        if handler is None:
            ticket.fail(TypeError(f"a task may not yield {request!r}"))
        else:
            handler(ticket, request)

    def _finish(self, task: Task, result: Any, error: BaseException | None) -> None:
        self.live.discard(task)
        task.on_done(result, error)
