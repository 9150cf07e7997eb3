"""Run a paymesh server in a background thread (for the demo and tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from paymesh.entrypoints.http.server import ServerLimits, build_config


def free_port() -> int:
    with socket.socket() as s:
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
