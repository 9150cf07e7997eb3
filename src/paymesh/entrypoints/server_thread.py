"""Run a paymesh server in a background thread (for the demo and tests)."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from paymesh.entrypoints.http.server import ServerLimits, build_config

_PORTS = random.SystemRandom()  # not the `random` module's: a test may seed that one


def _below_ephemeral() -> tuple[int, int]:
    """Ports under the kernel's ephemeral range, the one it hands out to outgoing connections
    (and to bind(0))."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768  # Linux's default
    return 10_000, max(10_001, first - 1)


def free_port() -> int:
    """A loopback port free now, for a server that binds it a little later.

    Chosen under the ephemeral range: a port from bind(0) could be handed meanwhile to any
    client socket's connect() elsewhere on the machine (a parallel test's, say), and the
    server's bind would then fail with "address already in use"."""
    low, high = _below_ephemeral()
    for _ in range(200):
        port = _PORTS.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # a crowded range: the kernel's pick, as before
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(
    app: Any, port: int | None = None, host: str = "127.0.0.1", limits: ServerLimits | None = None
) -> Iterator[str]:
    """Serve `app` on a loopback port (one the OS picks by default) as `paymesh serve` would
    (same server, loop and limits; `limits` to change them); yield its base URL.

    Signals stay with the main thread: uvicorn listens for them only when run there."""
    port = port or free_port()
    server = uvicorn.Server(
        build_config(app, host=host, port=port, log_level="warning", limits=limits)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
