"""Server mode: the sandbox behind moto's ThreadedMotoServer on 127.0.0.1.

For subprocess tests, rehearsals and ``remediate sandbox serve``: clients talk
to it with ``AWS_ENDPOINT_URL=http://127.0.0.1:PORT``. The clock is a
:class:`~remediate.clock.ScaledClock` (``clock_factor`` simulated seconds per
real second), since the clients live in other processes.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TextIO

from remediate.clock import ScaledClock
from remediate.sandbox.core import Sandbox
from remediate.sandbox.durations import Durations
from remediate.sandbox.fleet import Fleet, FleetSpec

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def announcement(endpoint: str, fleet: Fleet) -> str:
    """The one JSON line a server prints once it is ready."""
    return json.dumps({"endpoint": endpoint, "fleet": asdict(fleet)}, sort_keys=True)


def serve(
    port: int,
    fleet_spec: FleetSpec,
    clock_factor: float = 1.0,
    durations: Durations | None = None,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[str, Fleet, Sandbox], None] | None = None,
    out: TextIO | None = None,
) -> int:
    """Serve a sandbox with a built fleet until SIGTERM/SIGINT (or ``stop`` is set).

    Prints one JSON line ``{"endpoint": ..., "fleet": ...}`` to ``out`` (stdout)
    once the fleet is built. ``port=0`` picks a free port. Returns an exit code.
    """
    from moto.server import ThreadedMotoServer

    port = port or free_port()
    endpoint = f"http://{HOST}:{port}"
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    sandbox = Sandbox(
        ScaledClock(clock_factor),
        durations,
        region=fleet_spec.regions[0],
        in_process=False,
        endpoint_url=endpoint,
    )
    with sandbox:
        server.start()
        try:
            fleet = sandbox.build_fleet(fleet_spec)
            stream = out or sys.stdout
            print(announcement(endpoint, fleet), file=stream, flush=True)
            if on_ready is not None:
                on_ready(endpoint, fleet, sandbox)
            stop.wait()
        finally:
            server.stop()
    return 0
