"""A scale-out paymesh on this machine: PostgreSQL and nats-server of its own, the PSP
sandboxes as one process, N `paymesh serve` and M `paymesh worker` processes, all on
loopback in one temporary directory, stopped and removed at the end.

    with Cluster(apis=2, workers=2) as cluster:
        cluster.api_urls, cluster.api_key, cluster.kill_worker(0), cluster.dsn ...

`Cluster(apis=1, workers=0, embedded=True)` is the embedded mode (SQLite, the bus in the
server) beside the same sandbox process, for comparison in the same run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the servers' launchers live in tests/support
    sys.path.insert(0, str(ROOT))

from benchmarks.load.server import PSPS, paymesh_executable  # noqa: E402
from tests.support.live_server import free_port  # noqa: E402
from tests.support.nats import NatsServer, start_nats, stop_nats  # noqa: E402
from tests.support.postgres import PostgresServer, running_postgres  # noqa: E402


class ClusterError(RuntimeError):
    """A process would not start; the message carries its log."""


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive():
            assert self.popen is not None
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def tail(self, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Cluster:
    def __init__(
        self,
        apis: int = 2,
        workers: int = 2,
        embedded: bool = False,
        bus: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        self.apis, self.workers, self.embedded, self.bus = apis, workers, embedded, bus
        self.extra_env = env or {}
        self.root = Path(tempfile.mkdtemp(prefix="paymesh-cluster-"))
        self.paymesh = paymesh_executable()
        self.api_procs: list[Proc] = []
        self.worker_procs: list[Proc] = []
        self.sandbox: Proc | None = None
        self.api_urls: list[str] = []
        self.api_key = ""
        self.dsn = ""
        self.nats: NatsServer | None = None
        self._pg: contextlib.ExitStack = contextlib.ExitStack()
        self.postgres: PostgresServer | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        env = {
            **os.environ,
            "PAYMESH_RATE_LIMIT": "0",
            "PAYMESH_DATA_DIR": str(self.root),
            "PAYMESH_RECOVERY_INTERVAL": "5",
            "PAYMESH_RECOVERY_GRACE": "20",
            # The merchant endpoints of the audit listen on loopback: allow them.
            "PAYMESH_TARGET_ALLOWLIST": "127.0.0.1",
            **self.extra_env,
        }
        if not self.embedded:
            import asyncio

            self.postgres = self._pg.enter_context(running_postgres())
            self.dsn = asyncio.run(self.postgres.create_database("paymesh"))
            env["PAYMESH_DATABASE"] = self.dsn
            if self.bus:
                self.nats = start_nats(self.root)
                env["PAYMESH_BUS"] = self.nats.url
        ports = [free_port() for _ in range(self.apis)]
        self.api_urls = [f"http://127.0.0.1:{p}" for p in ports]
        box_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{box_port}/sandbox"
        # The PSPs' webhooks go to the first API process (a load balancer's job otherwise).
        self.sandbox = Proc(
            "sandbox",
            [
                self.paymesh,
                "sandbox",
                "--port",
                str(box_port),
                "--webhook-base",
                self.api_urls[0],
                "--data-dir",
                str(self.root),
            ],
            env,
            self.root / "sandbox.log",
        )
        self.sandbox.spawn()
        self._wait(self.sandbox, f"{self.sandbox_url}/stripe/_config")
        for psp in PSPS:
            env[f"PAYMESH_{psp.upper()}_API_BASE"] = f"{self.sandbox_url}/{psp}"
        env["PAYMESH_PAYPAL_TRUSTED_CERT"] = str(self.root / "sandbox" / "paypal-webhook-cert.pem")
        self.env = env
        self.api_key = self._create_key()
        for i, port in enumerate(ports):
            proc = Proc(
                f"api{i}",
                [
                    self.paymesh,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env,
                self.root / f"api{i}.log",
            )
            proc.spawn()
            self.api_procs.append(proc)
        for proc, url in zip(self.api_procs, self.api_urls, strict=True):
            self._wait(proc, f"{url}/readyz")
        for i in range(self.workers):
            proc = Proc(
                f"worker{i}",
                [self.paymesh, "worker", "--log-level", "warning"],
                env,
                self.root / f"worker{i}.log",
            )
            proc.spawn()
            self.worker_procs.append(proc)
        time.sleep(1.0)  # workers have no port; a dead one shows here
        for proc in self.worker_procs:
            if not proc.alive():
                raise ClusterError(f"{proc.name} exited at start:\n{proc.tail()}")

    def stop(self) -> None:
        for proc in [*self.worker_procs, *self.api_procs]:
            proc.stop()
        if self.sandbox:
            self.sandbox.stop()
        if self.nats:
            stop_nats(self.nats)
        self._pg.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- chaos --------------------------------------------------------------------------

    def kill_worker(self, i: int) -> None:
        self.worker_procs[i].kill9()

    def restart_worker(self, i: int) -> None:
        self.worker_procs[i].spawn()

    def pids(self) -> dict[str, int]:
        procs = [*self.api_procs, *self.worker_procs]
        if self.sandbox:
            procs.append(self.sandbox)
        return {p.name: p.pid for p in procs if p.alive()}

    # --- helpers ------------------------------------------------------------------------

    def _create_key(self) -> str:
        done = subprocess.run(
            [self.paymesh, "keys", "create", "--merchant", "bench"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise ClusterError(f"keys create failed:\n{done.stdout}{done.stderr}")
        return lines[-1].strip()

    def _wait(self, proc: Proc, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if not proc.alive():
                    raise ClusterError(f"{proc.name} exited at start:\n{proc.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                time.sleep(0.1)
        raise ClusterError(f"{url} not ready in {timeout:g}s:\n{proc.tail()}")
