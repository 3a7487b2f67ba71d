"""Running exported state machines on moto (tests, rehearsals), on a remediate Clock.

moto 5.2.5 interprets ASL when ``stepfunctions.execute_state_machine`` is set in
its config, making each SDK call against its own backends, so a Sandbox active
in the same process answers them with its rules. Its interpreter waits with real
sleeps (Wait states, Retry intervals); :class:`MotoStepFunctions` routes those
waits to a :class:`~remediate.clock.Clock` instead, so with a VirtualClock an
execution never sleeps and the sandbox's state changes (which happen on that
clock) come due as the machine waits for them. With many iterations waiting
in parallel each wait moves the clock on by its own length, so simulated time
runs ahead of what AWS would take: the logic is what such a run tests, not
durations.

Other differences from AWS, seen running the built-in playbooks (the exported
definitions avoid or absorb them):

* errors of SDK calls are named ``ec2.ec2Exception`` (AWS: ``Ec2.Ec2Exception``);
  the definitions only match ``States.TaskFailed``/``States.ALL``;
* a path ending in ``[n].Field`` gives a one-element list (AWS: the value), and
  a JSONPath filter matching nothing is an error (AWS: an empty list); the
  definitions never use either (checked at export);
* ``ToleratedFailurePercentage`` must be written as a decimal (``10.0``) and has
  no effect: a Distributed Map never fails for its items' failures, and failed
  items' outputs are null;
* a Distributed Map's items run inline, with no child executions (AWS: one per
  item, ``ListExecutions(mapRunArn=...)``): :mod:`remediate.sandbox.map_runs`
  records each item's run as one, so a follower learns each target's outcome as
  on AWS (a child's history is not kept);
* an execution started without a name gets an ARN ending in ``:None``: always
  pass ``name`` (:func:`remediate.export.run_input.execution_name`);
* intrinsic-function string literals cannot hold escapes (``\\'``, ``\\{``): the
  compiler writes look-alikes instead (:func:`remediate.export.asl.text`);
* an EBS volume's attachment has no ``DeleteOnTermination``: the inspect fragment
  reads it from the instance's block device mapping, which both have;
* an SDK call's answer keeps botocore's ``datetime`` values, which ``States.JsonToString``
  cannot write (AWS answers ISO 8601 text): :class:`_JsonAnswers` turns them into text;
* an SDK error response without a request id crashes the interpreter
  (``States.Runtime``, ``KeyError('RequestId')``, not catchable by the machine);
  the sandbox's injected faults carry one, like AWS's errors;
* every SDK call is signed with fixed credentials, which moto takes for its default
  user (the operator's identity in tests; AWS: the execution role, or the Task's
  ``Credentials`` role): clients here are signed as a session of that role
  (:mod:`remediate.sandbox.machine_role`), so EBS's KMS check on AttachVolume judges it;
* no ``RedriveExecution``: the sandbox adds it, re-running the execution from its
  start (AWS: from its unsuccessful states), see :mod:`remediate.sandbox.stepfunctions`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from unittest import mock

from remediate.clock import Clock
from remediate.sandbox import map_runs
from remediate.sandbox.patcher import Patcher


class _ClockTime:
    """Stands in for the ``time`` module in moto's retrier: sleeps go to the clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    @staticmethod
    def time() -> float:
        return time.time()


def _json(value: Any) -> Any:
    """``value`` with every datetime as AWS's SDK integrations write it
    ("2013-08-23T01:02:15.422Z")."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value


class _JsonAnswers:
    """A boto3 client whose operations answer JSON values, as a state machine gets them
    from AWS (see the module's docstring); anything else is the client's own."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._operations = frozenset(client.meta.method_to_api_mapping)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if name not in self._operations:
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            return _json(found(*args, **kwargs))

        return call


def _as_role(region: str, service: str, role_arn: str) -> Any:
    """A client like moto's own (``boto_client_for``), signed as a session of ``role_arn``
    (:mod:`remediate.sandbox.machine_role`) instead of moto's fixed credentials."""
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port

    from remediate.sandbox.core import shared_session
    from remediate.sandbox.machine_role import credentials

    endpoint = {} if botocore_stubber.enabled else {
        "endpoint_url": f"http://localhost:{moto_server_port()}"}
    # Region and credentials go to the client, not the Session: a Session would set them
    # on the shared botocore session, under other threads making their clients.
    return shared_session().client(
        service, region_name=region, **credentials(role_arn, region), **endpoint,
        config=Config(parameter_validation=False,
                      retries={"max_attempts": 0, "total_max_attempts": 1}))


def _cached(make: Callable[..., Any]) -> Callable[..., Any]:
    """moto builds a boto3 client for every SDK call (~40 ms each, on boto3's default
    session, which moto resets whenever a mock starts, so each test parsed the service's
    model again); keep one per Region, service and role for this engine (clients are
    thread-safe). moto gives each call the execution role, or the Task's ``Credentials``
    role: its client is signed as a session of that role (moto itself ignores them),
    made on the sandbox's one botocore session; a call without a role (never, from a
    machine created with its required roleArn) gets moto's own client."""
    clients: dict[tuple[str, str, str], Any] = {}
    lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role = str(getattr(state_credentials, "role_arn", None) or "")
        with lock:
            if (region, service, role) not in clients:
                clients[(region, service, role)] = _JsonAnswers(
                    _as_role(region, service, role) if role.startswith("arn:") else make(
                        region=region, service=service, state_credentials=state_credentials))
            return clients[(region, service, role)]

    return client_for


_TREES: dict[str, Any] = {}
_TREES_LOCK = threading.Lock()
_TREES_KEPT = 4


def _parse_once(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """moto parses a definition with ANTLR at CreateStateMachine and at every
    StartExecution: ~3-7 s each for the offline repair's half-megabyte definition, most
    of a Step Functions test's time. The syntax tree of a definition is kept (the last
    few, by text) and only moto's Preprocessor, which builds the fresh components an
    execution evaluates, runs again; a definition with syntax errors is parsed, and
    refused, every time as before."""
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    def parsed(definition: str) -> Any:
        with _TREES_LOCK:
            tree = _TREES.get(definition)
        if tree is None:
            program, tree = parse(definition)  # raises on a syntax error, as moto does
            with _TREES_LOCK:
                _TREES[definition] = tree
                while len(_TREES) > _TREES_KEPT:
                    del _TREES[next(iter(_TREES))]
            return program, tree
        return Preprocessor().visit(tree), tree

    return parsed


class MotoStepFunctions:
    """A context manager: moto executes state machines; their waits use ``clock``."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._patcher = Patcher()
        self._config: Any = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._log_level = logging.NOTSET

    def __enter__(self) -> MotoStepFunctions:
        from moto.core.config import default_user_config
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_aws_sdk,
        )
        from moto.stepfunctions.parser.asl.component.state.wait.wait_function import (
            wait_function,
        )
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
        from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
        from moto.stepfunctions.parser.utils import TMP_THREADS

        self._config = mock.patch.dict(default_user_config,
                                       {"stepfunctions": {"execute_state_machine": True}})
        self._config.start()
        clock = self.clock

        def wait_interval(_self: Any, env: Any, wait_seconds: int) -> None:
            if wait_seconds > 0 and env.is_running():
                clock.sleep(wait_seconds)

        original_start: Callable[[Any], None] = ExecutionWorker.start

        def start(worker: Any) -> None:
            before = len(TMP_THREADS)
            original_start(worker)
            with self._lock:
                self._threads.extend(TMP_THREADS[before:])

        self._patcher.set(wait_function.WaitFunction, "_wait_interval", wait_interval)
        self._patcher.set(retrier_decl, "time", _ClockTime(clock))
        self._patcher.set(ExecutionWorker, "start", start)
        map_runs.record_items(self._patcher)
        self._patcher.set(state_task_service_aws_sdk, "boto_client_for",
                          _cached(state_task_service_aws_sdk.boto_client_for))
        self._patcher.set(AmazonStateLanguageParser, "parse", staticmethod(_parse_once(
            self._patcher.original(AmazonStateLanguageParser, "parse"))))
        # moto logs every caught error with the whole state machine's repr.
        parser_log = logging.getLogger("moto.stepfunctions.parser")
        self._log_level = parser_log.level
        parser_log.setLevel(logging.CRITICAL)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._patcher.undo()
        logging.getLogger("moto.stepfunctions.parser").setLevel(self._log_level)
        if self._config is not None:
            self._config.stop()
            self._config = None

    def join(self, timeout: float = 600.0) -> bool:
        """Wait for the executions started so far to end (their threads to finish);
        False if one still runs after ``timeout`` real seconds (a hung machine)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)
