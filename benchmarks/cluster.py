"""A scale-out paymesh on this machine: PostgreSQL and nats-server of its own, the PSP
sandboxes as one process, N `paymesh serve` and M `paymesh worker` processes, all on
loopback in one temporary directory, stopped and removed at the end.

    with Cluster(apis=2, workers=2) as cluster:
        cluster.api_urls, cluster.api_key, cluster.kill_worker(0), cluster.dsn ...

`make cluster` (`python benchmarks/cluster.py up`) starts one in the foreground, with the API
servers behind one port (`Balancer`, round robin over TCP connections, as a load balancer in
TCP mode), prints where everything is and stops it all on Ctrl-C.

`Cluster(apis=1, workers=0, embedded=True)` is the embedded mode (SQLite, the bus in the
server) beside the same sandbox process, for comparison in the same run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

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
        webhook_api: int = 0,
        front_port: int | None = None,
    ) -> None:
        self.apis, self.workers, self.embedded, self.bus = apis, workers, embedded, bus
        #: Which API process the PSPs' webhooks go to; None: the front port (round robin).
        self.webhook_api: int | None = webhook_api
        self.front_port = front_port
        self.front: Balancer | None = None
        self.extra_env = env or {}
        self.root = Path(tempfile.mkdtemp(prefix="paymesh-cluster-"))
        self.paymesh = paymesh_executable()
        self.api_procs: list[Proc] = []
        self.worker_procs: list[Proc] = []
        self.sandbox: Proc | None = None
        self.api_urls: list[str] = []
        #: Each worker's own /metrics (a worker has no other listener).
        self.worker_metrics_urls: list[str] = []
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
            # /metrics of every process, behind a token made for this cluster.
            "PAYMESH_METRICS_TOKEN": os.environ.get("PAYMESH_METRICS_TOKEN")
            or "mtok_" + secrets.token_urlsafe(18),
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
        self.front = Balancer([("127.0.0.1", p) for p in ports], self.front_port or free_port())
        self.front.start()
        webhook_base = (
            self.front.url if self.webhook_api is None else self.api_urls[self.webhook_api]
        )
        box_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{box_port}/sandbox"
        # The PSPs' webhooks go to one API process, or to all through the front port.
        self.sandbox = Proc(
            "sandbox",
            [
                self.paymesh,
                "sandbox",
                "--port",
                str(box_port),
                "--webhook-base",
                webhook_base,
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
                # Its own place in the fraud feed, kept across a restart of the same process.
                {**env, "PAYMESH_FRAUD_FEED_CONSUMER": f"fraud-api{i}"},
                self.root / f"api{i}.log",
            )
            proc.spawn()
            self.api_procs.append(proc)
        for proc, url in zip(self.api_procs, self.api_urls, strict=True):
            self._wait(proc, f"{url}/readyz")
        for i in range(self.workers):
            metrics_port = free_port()
            self.worker_metrics_urls.append(f"http://127.0.0.1:{metrics_port}/metrics")
            proc = Proc(
                f"worker{i}",
                [
                    self.paymesh,
                    "worker",
                    "--log-level",
                    "warning",
                    "--metrics-port",
                    str(metrics_port),
                ],
                {**env, "PAYMESH_FRAUD_FEED_CONSUMER": f"fraud-worker{i}"},
                self.root / f"worker{i}.log",
            )
            proc.spawn()
            self.worker_procs.append(proc)
        for proc, url in zip(self.worker_procs, self.worker_metrics_urls, strict=True):
            self._wait_worker(proc, url)
        for proc in self.worker_procs:
            if not proc.alive():
                raise ClusterError(f"{proc.name} exited at start:\n{proc.tail()}")

    def stop(self) -> None:
        if self.front:
            self.front.stop()
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
        self._wait_worker(self.worker_procs[i], self.worker_metrics_urls[i])

    def _wait_worker(self, proc: Proc, metrics_url: str) -> None:
        """A worker is running once its /metrics answers: it opens that listener when its
        core is open and its signal handlers are in place."""
        token = self.env["PAYMESH_METRICS_TOKEN"]
        self._wait(proc, metrics_url, headers={"Authorization": f"Bearer {token}"})

    def pids(self) -> dict[str, int]:
        procs = [*self.api_procs, *self.worker_procs]
        if self.sandbox:
            procs.append(self.sandbox)
        return {p.name: p.pid for p in procs if p.alive()}

    def component_pids(self) -> dict[str, list[int]]:
        """Root pids by component (api, worker, sandbox, postgres, nats): each root's process
        tree is the component's (PostgreSQL's backends are its postmaster's children)."""
        found: dict[str, list[int]] = {}
        for name, pid in self.pids().items():
            found.setdefault(name.rstrip("0123456789"), []).append(pid)
        if self.postgres is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pidfile = self.postgres.data_dir / "postmaster.pid"
                found["postgres"] = [int(pidfile.read_text().split()[0])]
        if self.nats is not None:
            found["nats"] = [self.nats.process.pid]
        return found

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

    def _wait(
        self, proc: Proc, url: str, timeout: float = 60.0, headers: dict[str, str] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0, headers=headers) as client:
            while time.monotonic() < deadline:
                if not proc.alive():
                    raise ClusterError(f"{proc.name} exited at start:\n{proc.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                time.sleep(0.1)
        raise ClusterError(f"{url} not ready in {timeout:g}s:\n{proc.tail()}")


class Balancer:
    """One port in front of the API servers: each TCP connection goes to the next server in
    turn (what a load balancer in TCP mode does; a keep-alive connection stays with its
    server). Runs its own event loop in a thread."""

    def __init__(self, backends: list[tuple[str, int]], port: int) -> None:
        import threading

        self.backends = backends
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._next = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="balancer", daemon=True)
        self._loop: Any = None
        self._server: Any = None
        self._open: set[Any] = set()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise ClusterError(f"the front port {self.port} did not open")
        if self._server is None:
            raise ClusterError(f"the front port {self.port} is in use")

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._close)
        self._thread.join(timeout=5)

    def _close(self) -> None:
        """Close the port and every connection through it, then end the loop."""
        for writer in list(self._open):
            writer.close()
        if self._server is not None:
            self._server.close()
        self._loop.call_later(0.1, self._loop.stop)

    def _run(self) -> None:
        import asyncio

        loop = self._loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", self.port)
            )
        except OSError:
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._server.wait_closed())
        loop.close()

    async def _serve(self, reader: Any, writer: Any) -> None:
        import asyncio

        host, port = self.backends[self._next % len(self.backends)]
        self._next += 1
        self._open.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            self._open.discard(writer)
            writer.close()
            return
        self._open.add(up_writer)

        async def pipe(src: Any, dst: Any) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._open.discard(writer)
        self._open.discard(up_writer)


def up(apis: int, workers: int, port: int) -> int:
    """`make cluster`: the cluster in the foreground until Ctrl-C."""
    stopping = False

    def interrupt(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    print(f"starting PostgreSQL, NATS, the PSP sandboxes, {apis} API servers, {workers} workers")
    try:
        cluster = Cluster(apis=apis, workers=workers, webhook_api=None, front_port=port)
        cluster.__enter__()
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    assert cluster.front is not None
    print(f"API (all {apis} servers, round robin): {cluster.front.url}/v1")
    print(f"dashboard: {cluster.front.url}/dashboard   (log in with the API key below)")
    for i, url in enumerate(cluster.api_urls):
        print(f"  api{i}: {url}   (logs: {cluster.root / f'api{i}.log'})")
    print(
        f"metrics: each server's {{url}}/metrics and each worker's "
        f"{', '.join(cluster.worker_metrics_urls) or '(none)'}, with "
        f"'Authorization: Bearer {cluster.env['PAYMESH_METRICS_TOKEN']}'"
    )
    print(f"workers: {workers}   PostgreSQL: {cluster.dsn}")
    if cluster.nats:
        print(f"NATS: {cluster.nats.url}")
    print(
        f"PSP sandboxes: {cluster.sandbox_url}/{{stripe,adyen,paypal}} (webhooks to the API port)"
    )
    print(f"API key (merchant 'bench'): {cluster.api_key}")
    print("Ctrl-C stops everything and removes its temporary directory.")
    try:
        while not stopping:
            time.sleep(0.2)
            dead = [p.name for p in [*cluster.api_procs, *cluster.worker_procs] if not p.alive()]
            if dead:
                print(f"cluster: {', '.join(dead)} exited; stopping", file=sys.stderr)
                return 1
    finally:
        print("stopping the cluster")
        cluster.stop()
    return 0


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description="A paymesh cluster on this machine.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start it in the foreground; Ctrl-C stops it")
    start.add_argument("--apis", type=int, default=2)
    start.add_argument("--workers", type=int, default=2)
    start.add_argument("--port", type=int, default=8080, help="the API's one port")
    args = parser.parse_args()
    return up(args.apis, args.workers, args.port)


if __name__ == "__main__":
    sys.exit(main())
