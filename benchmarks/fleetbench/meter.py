"""What a run costs this machine: CPU split between remediate, botocore and the simulator,
and peak memory.

The simulator (moto plus the sandbox's patches) runs in the same process, on the
executor's I/O threads, so ``time.process_time`` alone would bill its work to the
tool. Two meters take it apart, both with ``time.thread_time`` (CPU of the calling
thread, so threads waiting on a lock or on the GIL are not charged):

- :class:`SimulatorMeter` wraps moto's ``BotocoreStubber.process_request``, the one
  entry point of every in-process request: everything moto and the sandbox do for a
  request (routing, the sandbox's clock and throttling, the backend, XML/JSON
  serialization) is simulator CPU.
- :class:`MeteredClients` wraps each boto3 client the executor gets: CPU spent in a
  client call minus the simulator CPU inside it is botocore's (building, signing
  and parsing requests), which a run against real AWS pays too.

Tool CPU = process CPU - simulator CPU = remediate's own (scheduler, actions,
journal, rate limiter, events) + botocore's.

Memory: peak RSS of the run (Linux's VmHWM, reset before the run through
``/proc/self/clear_refs``), next to the RSS the process had before it (moto's fleet,
botocore's models). The growth includes moto's new objects (snapshots, rescue
instances, responses) as well as the executor's state.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remediate.sandbox.patcher import Patcher

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class SimulatorMeter:
    """Thread CPU seconds spent inside moto's request handling, summed over threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds = 0.0
        self.requests = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds
            self.requests += 1

    @contextmanager
    def installed(self) -> Iterator[SimulatorMeter]:
        """Meter every request while the block runs (moto restored after)."""
        from moto.core.botocore_stubber import BotocoreStubber

        patcher = Patcher()
        original = BotocoreStubber.process_request

        def process_request(stubber: Any, request: Any) -> Any:
            started = time.thread_time()
            try:
                return original(stubber, request)
            finally:
                self.add(time.thread_time() - started)

        patcher.set(BotocoreStubber, "process_request", process_request)
        try:
            yield self
        finally:
            patcher.undo()


class _MeteredClient:
    """A boto3 client whose API methods add their thread CPU to a :class:`MeteredClients`."""

    def __init__(self, client: Any, owner: MeteredClients) -> None:
        self._client = client
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute
        owner = self._owner

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return attribute(*args, **kwargs)
            finally:
                owner.add(name, time.thread_time() - started)

        return call


class MeteredClients:
    """``(account, region, service) -> client`` for the executor, metering client calls."""

    def __init__(self, make: Callable[[str, str, str], Any]) -> None:
        """``make(service, region, account)`` builds (or returns a cached) boto3 client."""
        self._make = make
        self._clients: dict[tuple[str, str, str], _MeteredClient] = {}
        self._lock = threading.Lock()
        self.seconds = 0.0
        self.by_method: defaultdict[str, float] = defaultdict(float)

    def __call__(self, account: str, region: str, service: str) -> Any:
        key = (service, region, account)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = _MeteredClient(self._make(service, region, account), self)
            return self._clients[key]

    def add(self, method: str, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds
            self.by_method[method] += seconds


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of one run, by who spent them."""

    process: float
    simulator: float
    client_calls: float

    @property
    def tool(self) -> float:
        """remediate + botocore: what the run would cost against real AWS."""
        return self.process - self.simulator

    @property
    def botocore(self) -> float:
        return max(0.0, self.client_calls - self.simulator)

    @property
    def remediate(self) -> float:
        return self.tool - self.botocore


def _status_kib(field: str) -> int | None:
    try:
        text = _PROC_STATUS.read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Memory:
    """Peak RSS during the run and RSS before it, in MiB (None off Linux)."""

    before: float | None
    peak: float | None

    @property
    def growth(self) -> float | None:
        if self.before is None or self.peak is None:
            return None
        return self.peak - self.before


class MemoryMeter:
    """Peak resident memory of the process during a block (Linux)."""

    def __init__(self) -> None:
        self.result = Memory(None, None)

    @contextmanager
    def measuring(self) -> Iterator[MemoryMeter]:
        before = _status_kib("VmRSS")
        try:
            _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS
            resettable = True
        except OSError:
            resettable = False
        try:
            yield self
        finally:
            peak = _status_kib("VmHWM") if resettable else None
            self.result = Memory(None if before is None else before / 1024,
                                 None if peak is None else peak / 1024)
