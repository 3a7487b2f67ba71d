"""Server mode: the sandbox behind moto's server app on 127.0.0.1.

For subprocess tests, rehearsals and ``remediate sandbox serve``: clients talk
to it with ``AWS_ENDPOINT_URL=http://127.0.0.1:PORT``. The clock is a
:class:`~remediate.clock.ScaledClock` (``clock_factor`` simulated seconds per
real second), since the clients live in other processes.

The port is bound here, in the calling thread, before anything else: a port in
use is one :class:`PortInUse` error at once. (moto's ThreadedMotoServer binds in
its serving thread, which dies on a port in use while ``start()`` waits for it
forever, deaf to SIGTERM and Ctrl-C.)
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from typing import Any, TextIO
from unittest import mock

from remediate.clock import ScaledClock
from remediate.errors import UserError
from remediate.sandbox.core import Sandbox
from remediate.sandbox.durations import Durations
from remediate.sandbox.fleet import Fleet, FleetSpec
from remediate.sandbox.state import LostReplies
from remediate.sandbox.throttling import ThrottlePolicy

HOST = "127.0.0.1"


class PortInUse(UserError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def listening(port: int) -> socket.socket:
    """A socket listening on HOST:``port`` (0: any free port), or a one-line error."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server does
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {HOST} is in use: stop what listens there, or "
                            "pick another port (--port 0: any free one)") from None
        raise UserError(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}") from None
    return sock


class MotoServer:
    """moto's server app on a socket already listening, served from a thread."""

    def __init__(self, sock: socket.socket) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.port: int = sock.getsockname()[1]
        self._server: Any = make_server(HOST, self.port,
                                        DomainDispatcherApplication(create_backend_app), True,
                                        request_handler=MotoRequestHandler, fd=sock.fileno())
        sock.close()  # the server holds its own duplicate of the descriptor
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever() that ran
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def announcement(endpoint: str, fleet: Fleet, stepfunctions: bool = False,
                 lost_replies: LostReplies | None = None,
                 throttle: ThrottlePolicy | None = None) -> str:
    """The one JSON line a server prints once it is ready."""
    lost = None if lost_replies is None else {"probability": lost_replies.probability,
                                               "seed": lost_replies.seed}
    neighbour = None if throttle is None else throttle.neighbour
    throttled = None if throttle is None else {
        "model": throttle.model, "neighbour": None if neighbour is None else neighbour.share}
    return json.dumps({"endpoint": endpoint, "fleet": asdict(fleet),
                       "stepfunctions": stepfunctions, "lost_replies": lost,
                       "throttle": throttled}, sort_keys=True)


def serve(
    port: int,
    fleet_spec: FleetSpec,
    clock_factor: float = 1.0,
    durations: Durations | None = None,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[str, Fleet, Sandbox], None] | None = None,
    out: TextIO | None = None,
    stepfunctions: bool = False,
    lost_replies: LostReplies | None = None,
    throttle: ThrottlePolicy | None = None,
) -> int:
    """Serve a sandbox with a built fleet until SIGTERM/SIGINT (or ``stop`` is set).

    Prints one JSON line ``{"endpoint": ..., "fleet": ...}`` to ``out`` (stdout)
    once the fleet is built. ``port=0`` picks a free port. A port in use raises
    :class:`PortInUse` before anything else. Returns an exit code.

    ``stepfunctions``: moto's interpreter executes the state machines started here
    (``run --engine stepfunctions`` rehearsed), its Wait states and Retry delays on the
    server's clock, and its ``aws-sdk`` Tasks call this server (moto sends them to
    ``localhost:$MOTO_PORT``, 5000 unless set: set to this server's port).

    ``lost_replies``: once the fleet is built, every mutating call takes effect and then
    loses its reply (a 500 InternalError) with that probability, seeded
    (:meth:`Sandbox.lose_replies`): rehearse what the tool does when AWS loses replies.

    ``throttle``: once the fleet is built, requests are throttled so (e.g. AWS's EC2
    buckets under a model, with a neighbour: :class:`ThrottlePolicy`).
    """
    server = MotoServer(listening(port))
    endpoint = f"http://{HOST}:{server.port}"
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    clock = ScaledClock(clock_factor)
    try:
        with ExitStack() as stack:
            sandbox = stack.enter_context(Sandbox(
                clock, durations, region=fleet_spec.regions[0], in_process=False,
                endpoint_url=endpoint))
            if stepfunctions:
                from remediate.export.moto_engine import MotoStepFunctions

                stack.enter_context(mock.patch.dict(os.environ, {"MOTO_PORT": str(server.port)}))
                stack.enter_context(MotoStepFunctions(clock))
            server.start()
            fleet = sandbox.build_fleet(fleet_spec)
            if lost_replies is not None:
                sandbox.lose_replies("*", lost_replies.probability, seed=lost_replies.seed)
            sandbox.set_throttle(throttle)
            stream = out or sys.stdout
            print(announcement(endpoint, fleet, stepfunctions, lost_replies, throttle),
                  file=stream, flush=True)
            if on_ready is not None:
                on_ready(endpoint, fleet, sandbox)
            stop.wait()
    finally:
        server.stop()
    return 0
