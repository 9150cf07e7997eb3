"""A `paymesh serve` of our own (and, if asked, `paymesh sandbox` beside it), in a temp data
dir, stopped and removed afterwards; and CPU and memory of process trees, from /proc."""

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
from pathlib import Path

import httpx

PSPS = ("stripe", "adyen", "paypal")
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class SetupError(RuntimeError):
    """The server could not be started or reached; no measurement was made."""


class ProcessTree:
    """The processes under some root pids (workers a server forks included)."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots

    def usage(self) -> tuple[float, float] | None:
        """(CPU seconds, RSS MB) of the trees; None when no root is alive."""
        table: dict[int, tuple[int, float, int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # Fields after the parenthesised command name: state ppid ... utime stime ... rss.
                fields = stat.read_text().rpartition(")")[2].split()
                pid = int(stat.parent.name)
            except (OSError, ValueError):
                continue
            cpu = (int(fields[11]) + int(fields[12])) / _TICKS
            table[pid] = (int(fields[1]), cpu, int(fields[21]))
        members = {pid for pid in self.roots if pid in table}
        if not members:
            return None
        grew = True
        while grew:
            children = {pid for pid, row in table.items() if row[0] in members} - members
            members |= children
            grew = bool(children)
        cpu = sum(table[pid][1] for pid in members)
        rss = sum(table[pid][2] for pid in members) * _PAGE / 2**20
        return cpu, rss


class ManagedServer:
    """`paymesh serve` with rate limiting off; with `sandbox_process`, the PSP sandboxes run
    as their own `paymesh sandbox` (on the other core) and the server is pointed at them."""

    def __init__(
        self,
        paymesh: str,
        startup_timeout: float,
        stop_timeout: float,
        keep_data: bool,
        sandbox_process: bool = False,
    ) -> None:
        self._paymesh = paymesh
        self._sandbox_process = sandbox_process
        self._keep_data = keep_data
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._data_dir = Path(tempfile.mkdtemp(prefix="paymesh-bench-"))
        self._log_path = self._data_dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._sandbox: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.sandbox_url = ""
        self.api_key = ""

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def server_tree(self) -> ProcessTree | None:
        return None if self._process is None else ProcessTree([self._process.pid])

    @property
    def sandbox_tree(self) -> ProcessTree | None:
        return None if self._sandbox is None else ProcessTree([self._sandbox.pid])

    def start(self) -> None:
        self.api_key = self._create_key()
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        # The built-in sandboxes listen on their own loopback port, never the API's.
        builtin_sandbox_port = _free_port()
        self.sandbox_url = f"http://127.0.0.1:{builtin_sandbox_port}/sandbox"
        # The merchant endpoint the benchmark registers listens on loopback: allow it.
        env = {**os.environ, "PAYMESH_RATE_LIMIT": "0", "PAYMESH_TARGET_ALLOWLIST": "127.0.0.1"}
        # Output goes to a file, not a pipe: nobody reads a pipe during the run, and a full
        # one would stall the server mid-benchmark.
        with self._log_path.open("wb") as log:
            if self._sandbox_process:
                sandbox_port = _free_port()
                self.sandbox_url = f"http://127.0.0.1:{sandbox_port}/sandbox"
                command = [self._paymesh, "sandbox", "--port", str(sandbox_port)]
                command += ["--webhook-base", self.base_url, "--data-dir", str(self._data_dir)]
                self._sandbox = self._spawn(command, env, log)
                # It writes PayPal's certificate, which the server reads at start: first.
                self._wait_ready(self._sandbox, f"{self.sandbox_url}/stripe/_config", "sandbox")
                for psp in PSPS:
                    env[f"PAYMESH_{psp.upper()}_API_BASE"] = f"{self.sandbox_url}/{psp}"
                cert = self._data_dir / "sandbox" / "paypal-webhook-cert.pem"
                env["PAYMESH_PAYPAL_TRUSTED_CERT"] = str(cert)
            command = [
                self._paymesh,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--sandbox-port",
                str(builtin_sandbox_port),
            ]
            command += ["--data-dir", str(self._data_dir)]
            self._process = self._spawn(command, env, log)
        self._wait_ready(self._process, f"{self.base_url}/readyz", "paymesh serve")

    @staticmethod
    def _spawn(command: list[str], env: dict[str, str], log: object) -> subprocess.Popen[bytes]:
        # Own session, so stop() can signal the process and any workers it forks.
        return subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _create_key(self) -> str:
        command = [self._paymesh, "keys", "create", "--merchant", "bench"]
        command += ["--data-dir", str(self._data_dir)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise SetupError(f"`{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")
        return lines[-1].strip()

    def _wait_ready(self, process: subprocess.Popen[bytes], url: str, name: str) -> None:
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SetupError(f"{name} exited early:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                time.sleep(0.1)
        raise SetupError(f"{url} not 200 after {self._startup_timeout:g}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        for attribute in ("_process", "_sandbox"):
            process = getattr(self, attribute)
            setattr(self, attribute, None)
            if process is not None and process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
                try:
                    process.wait(self._stop_timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(process.pid, signal.SIGKILL)
                    process.wait()
        if self._keep_data:
            print(f"server data dir and log kept in {self._data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self._data_dir, ignore_errors=True)


def paymesh_executable() -> str:
    # The venv's own entry point first: `python benchmarks/...` with the venv's python must
    # not pick up some other paymesh from PATH.
    beside_python = Path(sys.executable).with_name("paymesh")
    in_repo = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "paymesh"
    for candidate in (beside_python, in_repo):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("paymesh")
    if found is None:
        raise SetupError("no `paymesh` executable found; install the package or use --base-url")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
