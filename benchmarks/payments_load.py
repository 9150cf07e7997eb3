"""Open-loop load test of the paymesh payment API, next to a same-run baseline.

Requests leave on a fixed schedule (request ``i`` is due at ``t0 + i / rate``),
each as its own task, whether or not earlier ones have answered. Latency is
measured from the *scheduled* time, not from when the request actually left,
so a server (or a client) that queues cannot hide it: the classic
coordinated-omission mistake of closed-loop tools is avoided.

Each rate runs two phases of the same length: ``GET /healthz`` (the floor: the
same server stack doing nothing) and ``POST /v1/payments``. The interesting
figure is the ratio between them, since the absolute numbers depend on the
machine.

By default the script starts its own ``paymesh serve`` in a temporary data
dir; ``--base-url`` and ``--api-key`` point it at a running server instead.

    python benchmarks/payments_load.py --rate 300 --duration 5
    python benchmarks/payments_load.py --sweep 200,500,1000 --mix --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import httpx
from rich.console import Console
from rich.table import Table

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
CUSTOMERS = 500
DECLINE_TOKEN = "pm_card_chargeDeclinedInsufficientFunds"
TIMER_TICK = 0.001  # event-loop timer resolution, seconds
IDLE_CPU_SHARE = 0.05  # a server under 5% of a core counts as idle between phases


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request, built before the phase starts so the scheduler only sends."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    expected: frozenset[int]


def healthz_requests(count: int) -> list[RequestSpec]:
    spec = RequestSpec("GET", "/healthz", {}, None, frozenset({200}))
    return [spec] * count


def payment_requests(count: int, api_key: str, mix: bool, rng: random.Random) -> list[RequestSpec]:
    return [_payment_request(n, api_key, mix, rng) for n in range(count)]


def _payment_request(n: int, api_key: str, mix: bool, rng: random.Random) -> RequestSpec:
    body: dict[str, Any] = {
        "amount": rng.randint(100, 50_000),
        "currency": "usd",
        "customer_id": f"cus_{n % CUSTOMERS}",
        "payment_method": "pm_card_visa",
        "metadata": {"order_id": f"ord-{uuid.uuid4()}"},
    }
    expected = frozenset({201})
    if mix:
        draw = rng.random()
        if draw < 0.05:
            # A decline is a correct answer (402 card_error), not a failure.
            body["payment_method"] = DECLINE_TOKEN
            expected = frozenset({402})
        elif draw < 0.10:
            body["capture_method"] = "manual"
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Idempotency-Key": f"bench-{uuid.uuid4()}",
        "Content-Type": "application/json",
    }
    return RequestSpec("POST", "/v1/payments", headers, json.dumps(body).encode(), expected)


# --------------------------------------------------------------------------- clients


class LoadClient(Protocol):
    """Sends one request and returns its status and body; raises on any transport failure."""

    async def send(self, spec: RequestSpec) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class AiohttpClient:
    """aiohttp's client: keep-alive pool, C-accelerated parser, about a fifth of httpx's CPU
    per request here (httpx's pool polls every connection on each request), so the
    generator leaves the server most of the 2 cores."""

    def __init__(self, base_url: str, connections: int, timeout: float) -> None:
        self._base = base_url.rstrip("/")
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the running loop, as aiohttp requires
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def send(self, spec: RequestSpec) -> tuple[int, bytes]:
        async with self._client().request(
            spec.method, self._base + spec.path, headers=spec.headers, data=spec.body
        ) as response:
            return response.status, await response.read()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxClient:
    """httpx's AsyncClient, kept to cross-check the aiohttp client."""

    def __init__(self, base_url: str, connections: int, timeout: float) -> None:
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=60.0,
        )
        # The pool timeout matters: when every connection is busy, a request waits
        # in the client, and that wait is (rightly) part of its latency.
        self._client = httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=httpx.Timeout(timeout)
        )

    async def send(self, spec: RequestSpec) -> tuple[int, bytes]:
        response = await self._client.request(
            spec.method, spec.path, headers=spec.headers, content=spec.body
        )
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self._client.aclose()


CLIENTS: dict[str, Callable[[str, int, float], LoadClient]] = {
    "aiohttp": AiohttpClient,
    "httpx": HttpxClient,
}


# --------------------------------------------------------------------------- statistics


@dataclass
class PhaseStats:
    """What one phase observed; latencies are seconds from the scheduled send time."""

    name: str
    target_rate: float
    duration: float
    scheduled: int = 0
    sent: int = 0
    dropped: int = 0
    late: int = 0
    completed: int = 0
    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    send_lags: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    generator_cpu: float = 0.0
    server_cpu: float | None = None
    settle_wait: float | None = None

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0

    @property
    def ok_rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def cpu_ms_per_request(self, cpu: float | None) -> float | None:
        if cpu is None or not self.completed:
            return None
        return round(1000 * cpu / self.completed, 3)

    def latency_ms(self) -> dict[str, float | None]:
        ordered = sorted(self.latencies)
        figures = {f"p{p:g}": _percentile_ms(ordered, p) for p in PERCENTILES}
        figures["max"] = ordered[-1] * 1000 if ordered else None
        return figures

    def to_dict(self) -> dict[str, Any]:
        lags = sorted(self.send_lags)
        return {
            "phase": self.name,
            "target_rate": self.target_rate,
            "duration_s": self.duration,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "completed": self.completed,
            "ok": self.ok,
            "late": self.late,
            "dropped": self.dropped,
            "elapsed_s": round(self.elapsed, 3),
            "achieved_rate": round(self.achieved_rate, 1),
            "ok_rate": round(self.ok_rate, 1),
            "latency_ms": _rounded(self.latency_ms()),
            "send_lag_ms": {"p50": _percentile_ms(lags, 50), "p99": _percentile_ms(lags, 99)},
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "generator_cpu_s": round(self.generator_cpu, 3),
            "generator_cpu_pct": _pct(self.generator_cpu, self.elapsed),
            "generator_cpu_ms_per_request": self.cpu_ms_per_request(self.generator_cpu),
            "server_cpu_s": None if self.server_cpu is None else round(self.server_cpu, 3),
            "server_cpu_pct": None
            if self.server_cpu is None
            else _pct(self.server_cpu, self.elapsed),
            "server_cpu_ms_per_request": self.cpu_ms_per_request(self.server_cpu),
            "settle_wait_s": None if self.settle_wait is None else round(self.settle_wait, 2),
        }


def _percentile_ms(ordered: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1] * 1000, 3)


def _rounded(figures: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v, 3) for k, v in figures.items()}


def _pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def _describe_failure(status: int, body: bytes) -> str:
    """`402 fraud_error` says more than `402`; only parsed off the success path."""
    try:
        kind = json.loads(body)["error"]["type"]
    except (ValueError, KeyError, TypeError):
        return str(status)
    return f"{status} {kind}"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- open loop


class OpenLoop:
    """Sends `requests` at `rate` per second; one task per request, never waiting on answers."""

    def __init__(
        self,
        client: LoadClient,
        stats: PhaseStats,
        max_inflight: int,
        late_after: float,
    ) -> None:
        self._client = client
        self._stats = stats
        self._max_inflight = max_inflight
        self._late_after = late_after
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_done = 0.0

    async def run(self, requests: Sequence[RequestSpec], rate: float) -> None:
        stats = self._stats
        stats.scheduled = len(requests)
        interval = 1.0 / rate
        cpu_before = _cpu_seconds()
        # A few ms of head start so request 0 is not born late.
        t0 = time.perf_counter() + 0.005
        await self._schedule(requests, t0, interval)
        if self._tasks:
            await asyncio.wait(self._tasks)
        stats.generator_cpu = _cpu_seconds() - cpu_before
        # A phase lasts at least its schedule; longer if answers trail behind it.
        stats.elapsed = max(self._last_done, t0 + len(requests) * interval) - t0

    async def _schedule(self, requests: Sequence[RequestSpec], t0: float, interval: float) -> None:
        # Launch everything already due, then sleep to the next due time. Timers
        # have 1 ms resolution (uvloop truncates shorter sleeps to 0, which would
        # spin a core we share with the server), so never sleep less than the
        # tick: at high rates each wake-up sends a small batch, up to ~1 ms late,
        # and that lateness is counted in the latency since it runs from `due`.
        i, total = 0, len(requests)
        while i < total:
            now = time.perf_counter()
            while i < total and t0 + i * interval <= now:
                self._launch(requests[i], t0 + i * interval)
                i += 1
            if i < total:
                await asyncio.sleep(max(TIMER_TICK, t0 + i * interval - time.perf_counter()))

    def _launch(self, spec: RequestSpec, due: float) -> None:
        if len(self._tasks) >= self._max_inflight:
            # Sending it anyway would just grow an unbounded backlog in the client.
            self._stats.dropped += 1
            return
        self._stats.sent += 1
        task = asyncio.get_running_loop().create_task(self._one(spec, due))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one(self, spec: RequestSpec, due: float) -> None:
        stats = self._stats
        lag = time.perf_counter() - due
        stats.send_lags.append(lag)
        if lag > self._late_after:
            stats.late += 1
        try:
            status, body = await self._client.send(spec)
        except Exception as exc:  # every failure is a data point, none may stop the run
            stats.errors[type(exc).__name__] += 1
            return
        done = time.perf_counter()
        self._last_done = max(self._last_done, done)
        stats.completed += 1
        stats.latencies.append(done - due)
        stats.statuses[str(status)] += 1
        if status in spec.expected:
            stats.ok += 1
        else:
            stats.errors[_describe_failure(status, body)] += 1


# --------------------------------------------------------------------------- server


class ManagedServer:
    """A `paymesh serve` of our own, in a temp data dir, stopped and removed afterwards."""

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
        self._sandbox: subprocess.Popen[bytes] | None = None
        self._keep_data = keep_data
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._data_dir = Path(tempfile.mkdtemp(prefix="paymesh-bench-"))
        self._log_path = self._data_dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.api_key = ""

    def start(self) -> None:
        paymesh = self._paymesh
        self.api_key = self._create_key(paymesh)
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        command = [paymesh, "serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--data-dir", str(self._data_dir)]
        env = {**os.environ, "PAYMESH_RATE_LIMIT": "0"}
        sandbox_port = _free_port()
        if self._sandbox_process:
            env["PAYMESH_STRIPE_API_BASE"] = f"http://127.0.0.1:{sandbox_port}/sandbox/stripe"
        # Output goes to a file, not a pipe: nobody reads a pipe during the run,
        # and a full one would stall the server mid-benchmark.
        with self._log_path.open("wb") as log:
            # Own session, so stop() can signal the server and any workers it forks.
            self._process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            if self._sandbox_process:
                # The PSP sandbox as its own process (it can use the other core); its CPU is
                # counted with the server's, and stop() ends it too.
                self._sandbox = subprocess.Popen(
                    [paymesh, "sandbox", "--port", str(sandbox_port), "--webhook-base",
                     self.base_url],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
        self._wait_ready()

    def _create_key(self, paymesh: str) -> str:
        command = [paymesh, "keys", "create", "--merchant", "bench"]
        command += ["--data-dir", str(self._data_dir)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise SetupError(f"`{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")
        return lines[-1].strip()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(base_url=self.base_url, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise SetupError(f"paymesh serve exited early:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        return
                time.sleep(0.1)
        raise SetupError(f"/readyz not 200 after {self._startup_timeout:g}s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float | None:
        """CPU time of the server's process group (it may run workers), from /proc."""
        if self._process is None:
            return None
        total = _group_cpu_seconds(self._process.pid)
        if total is not None and self._sandbox is not None:
            total += _group_cpu_seconds(self._sandbox.pid) or 0.0
        return total

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None and sandbox.poll() is None:
            sandbox.kill()
            sandbox.wait()
        if self._keep_data:
            print(f"server data dir and log kept in {self._data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self._data_dir, ignore_errors=True)


class SetupError(RuntimeError):
    """The server could not be started or reached; no measurement was made."""


def _paymesh_executable() -> str:
    # The venv's own entry point first: `python benchmarks/...` with the venv's
    # python must not pick up some other paymesh from PATH.
    beside_python = Path(sys.executable).with_name("paymesh")
    in_repo = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "paymesh"
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


def _group_cpu_seconds(pgid: int) -> float | None:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Fields after the parenthesised command name: state ppid pgrp ... utime stime.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks if total else None


# --------------------------------------------------------------------------- benchmark


@dataclass(frozen=True)
class Settings:
    rates: list[float]
    client: str
    duration: float
    warmup: float
    mix: bool
    max_inflight: int
    connections: int | None
    timeout: float
    late_ms: float
    settle_timeout: float
    seed: int


@dataclass
class RateResult:
    rate: float
    healthz: PhaseStats
    payments: PhaseStats

    def ratios(self) -> dict[str, float | None]:
        base, pay = self.healthz.latency_ms(), self.payments.latency_ms()
        return {
            "p50": _ratio(pay["p50"], base["p50"]),
            "p99": _ratio(pay["p99"], base["p99"]),
            "payments_ok_rate_vs_target": _ratio(self.payments.ok_rate, self.rate),
        }

    def to_dict(self) -> dict[str, Any]:
        ratios = {k: None if v is None else round(v, 3) for k, v in self.ratios().items()}
        return {
            "rate": self.rate,
            "healthz": self.healthz.to_dict(),
            "payments": self.payments.to_dict(),
            "ratios": ratios,
        }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


class Benchmark:
    """Runs warm-up, then the healthz and payments phases, at each rate."""

    def __init__(
        self,
        settings: Settings,
        base_url: str,
        api_key: str,
        server_cpu: Callable[[], float | None],
    ) -> None:
        self._settings = settings
        self._base_url = base_url
        self._api_key = api_key
        self._server_cpu = server_cpu
        self._rng = random.Random(settings.seed)

    async def run(self) -> list[RateResult]:
        results = []
        for rate in self._settings.rates:
            make_client = CLIENTS[self._settings.client]
            client = make_client(self._base_url, self._pool_size(rate), self._settings.timeout)
            try:
                results.append(await self._run_rate(client, rate))
            finally:
                await client.aclose()
        return results

    def _pool_size(self, rate: float) -> int:
        if self._settings.connections:
            return self._settings.connections
        # Enough connections for ~100 ms of latency at this rate (Little's law)
        # before requests wait in the client; more makes httpx's pool slower.
        return max(32, min(self._settings.max_inflight, math.ceil(rate / 10)))

    async def _run_rate(self, client: LoadClient, rate: float) -> RateResult:
        s = self._settings
        if s.warmup > 0:
            # Opens the pool's connections and warms the server's code paths.
            warm = self._payments(math.ceil(rate * s.warmup))
            await self._phase(client, "warmup", warm, rate, s.warmup)
        waited = await self._settle()
        healthz = await self._phase(
            client, "healthz", healthz_requests(self._count(rate)), rate, s.duration
        )
        healthz.settle_wait = waited
        waited = await self._settle()
        payments = await self._phase(
            client, "payments", self._payments(self._count(rate)), rate, s.duration
        )
        payments.settle_wait = waited
        return RateResult(rate, healthz, payments)

    def _count(self, rate: float) -> int:
        return max(1, round(rate * self._settings.duration))

    def _payments(self, count: int) -> list[RequestSpec]:
        return payment_requests(count, self._api_key, self._settings.mix, self._rng)

    async def _phase(
        self,
        client: LoadClient,
        name: str,
        requests: Sequence[RequestSpec],
        rate: float,
        duration: float,
    ) -> PhaseStats:
        stats = PhaseStats(name, rate, duration)
        server_before = self._server_cpu()
        loop = OpenLoop(client, stats, self._settings.max_inflight, self._settings.late_ms / 1000)
        await loop.run(requests, rate)
        server_after = self._server_cpu()
        if server_before is not None and server_after is not None:
            stats.server_cpu = server_after - server_before
        return stats

    async def _settle(self) -> float:
        """Wait for the server to go idle, so one phase's backlog (the outbox
        dispatcher, fraud stream, webhooks) is not billed to the next phase.
        Returns the seconds waited."""
        started = time.monotonic()
        if self._server_cpu() is None:
            # Not our process, so we cannot watch it: a fixed pause is all we have.
            await asyncio.sleep(1.0)
            return 1.0
        window = 0.25
        while time.monotonic() - started < self._settings.settle_timeout:
            before = self._server_cpu() or 0.0
            await asyncio.sleep(window)
            if (self._server_cpu() or 0.0) - before < IDLE_CPU_SHARE * window:
                break
        return time.monotonic() - started


# --------------------------------------------------------------------------- output


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _errors(stats: PhaseStats) -> str:
    return ", ".join(f"{k} x{v}" for k, v in stats.errors.most_common()) or "-"


def render(console: Console, results: Sequence[RateResult], header: str) -> None:
    console.print(header)
    console.print(_phase_table(results))
    console.print(_ratio_table(results))


def _phase_table(results: Sequence[RateResult]) -> Table:
    table = Table(title="Latency from scheduled send time (ms)", title_justify="left")
    for name in ("rate/s", "phase", "sent", "done", "ok", "late/drop", "achieved/s"):
        table.add_column(name, justify="right")
    for name in ("p50", "p90", "p99", "p99.9", "max"):
        table.add_column(name, justify="right")
    table.add_column("errors", overflow="fold")
    for result in results:
        for stats in (result.healthz, result.payments):
            latency = stats.latency_ms()
            table.add_row(
                f"{result.rate:g}",
                stats.name,
                str(stats.sent),
                str(stats.completed),
                str(stats.ok),
                f"{stats.late}/{stats.dropped}",
                f"{stats.achieved_rate:.1f}",
                *(_ms(latency[key]) for key in ("p50", "p90", "p99", "p99.9", "max")),
                _errors(stats),
            )
    return table


def _ratio_table(results: Sequence[RateResult]) -> Table:
    table = Table(title="Payments vs healthz floor, and CPU (% of one core)", title_justify="left")
    for name in ("rate/s", "p50 ratio", "p99 ratio", "payments ok/s", "of target"):
        table.add_column(name, justify="right")
    for name in ("gen CPU hz", "gen CPU pay", "srv CPU hz", "srv CPU pay", "srv ms/pay"):
        table.add_column(name, justify="right")
    for result in results:
        ratios = result.ratios()
        share = ratios["payments_ok_rate_vs_target"]
        table.add_row(
            f"{result.rate:g}",
            "-" if ratios["p50"] is None else f"{ratios['p50']:.2f}",
            "-" if ratios["p99"] is None else f"{ratios['p99']:.2f}",
            f"{result.payments.ok_rate:.1f}",
            "-" if share is None else f"{100 * share:.1f}%",
            *(_cpu_cell(s.generator_cpu, s) for s in (result.healthz, result.payments)),
            *(_cpu_cell(s.server_cpu, s) for s in (result.healthz, result.payments)),
            _ms(result.payments.cpu_ms_per_request(result.payments.server_cpu)),
        )
    return table


def _cpu_cell(cpu: float | None, stats: PhaseStats) -> str:
    return "-" if cpu is None else f"{_pct(cpu, stats.elapsed):.0f}%"


def write_json(
    path: Path, settings: Settings, results: Sequence[RateResult], environment: dict[str, Any]
) -> None:
    document = {
        "settings": dataclasses.asdict(settings),
        "environment": environment,
        "runs": [result.to_dict() for result in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# --------------------------------------------------------------------------- entry


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Open-loop load test of POST /v1/payments against a GET /healthz floor."
    )
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s (default 500)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds first")
    parser.add_argument("--sweep", type=_rate_list, help="rates to run in turn, e.g. 200,500,1000")
    parser.add_argument("--mix", action="store_true", help="5%% declines, 5%% manual capture")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all figures as JSON")
    parser.add_argument("--base-url", help="use a running server instead of starting one")
    parser.add_argument("--api-key", help="secret key for --base-url")
    parser.add_argument("--paymesh", help="paymesh executable to start (default: the venv's)")
    parser.add_argument("--keep-data", action="store_true", help="keep the server's dir and log")
    parser.add_argument(
        "--sandbox-process",
        action="store_true",
        help="run the PSP sandbox as its own `paymesh sandbox` process (uses the second core)",
    )
    parser.add_argument(
        "--client", choices=sorted(CLIENTS), default="aiohttp", help="aiohttp (default) or httpx"
    )
    parser.add_argument("--max-inflight", type=int, default=2000, help="beyond it, drop")
    parser.add_argument("--connections", type=int, help="client pool size (default: rate/10)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s")
    parser.add_argument("--late-ms", type=float, default=10.0, help="send lag counted late")
    parser.add_argument("--settle-timeout", type=float, default=10.0, help="max idle wait, s")
    parser.add_argument("--startup-timeout", type=float, default=30.0, help="server start, s")
    parser.add_argument("--seed", type=int, default=1, help="seed for amounts and the mix")
    args = parser.parse_args(argv)
    if args.base_url and not args.api_key:
        parser.error("--base-url needs --api-key")
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    return args


def _rate_list(text: str) -> list[float]:
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("expected positive rates, e.g. 200,500,1000")
    return rates


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        rates=args.sweep or [args.rate],
        client=args.client,
        duration=args.duration,
        warmup=args.warmup,
        mix=args.mix,
        max_inflight=args.max_inflight,
        connections=args.connections,
        timeout=args.timeout,
        late_ms=args.late_ms,
        settle_timeout=args.settle_timeout,
        seed=args.seed,
    )


def _run_async(coro: Coroutine[Any, Any, list[RateResult]]) -> tuple[list[RateResult], str]:
    try:
        import uvloop  # the generator must stay light: the server shares our 2 cores
    except ImportError:
        return asyncio.run(coro), "asyncio"
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro), "uvloop"


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[tuple[str, str, ManagedServer | None]]:
    if args.base_url:
        yield args.base_url.rstrip("/"), args.api_key, None
        return
    server = ManagedServer(
        args.paymesh or _paymesh_executable(),
        args.startup_timeout,
        stop_timeout=10.0,
        keep_data=args.keep_data,
        sandbox_process=args.sandbox_process,
    )
    try:
        server.start()
        yield server.base_url, server.api_key, server
    finally:
        server.stop()


def _client_label(name: str) -> str:
    if name == "httpx":
        return f"httpx {httpx.__version__}"
    return f"aiohttp {aiohttp.__version__}"


def _exit_on_sigterm() -> None:
    # Default SIGTERM handling would end us without running `finally`, and leave
    # our server running and its data dir behind; exiting normally cleans up.
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _exit_on_sigterm()
    settings = _settings(args)
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        with _target(args) as (base_url, api_key, server):
            server_cpu = server.cpu_seconds if server else (lambda: None)
            bench = Benchmark(settings, base_url, api_key, server_cpu)
            results, loop_name = _run_async(bench.run())
    except SetupError as exc:
        console.print(f"[red]setup failed:[/red] {exc}", markup=True, highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; server stopped")
        return 130
    environment = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "event_loop": loop_name,
        "client": _client_label(settings.client),
        "server": "external " + base_url if server is None else "managed paymesh serve",
    }
    header = (
        f"{environment['server']} · {environment['cpu_count']} CPUs · "
        f"{loop_name} · {environment['client']} · mix={'on' if settings.mix else 'off'}"
    )
    render(console, results, header)
    for stats in (s for r in results for s in (r.healthz, r.payments)):
        if stats.settle_wait is not None and stats.settle_wait >= settings.settle_timeout:
            console.print(
                f"[yellow]warning:[/yellow] the server was still busy when the {stats.name} "
                f"phase at {stats.target_rate:g}/s began (backlog from the phase before)"
            )
    if args.json:
        write_json(args.json, settings, results, environment)
    # A phase where nothing succeeded measured nothing (a wrong key, a dead
    # route): fail loudly rather than print a table of fast errors.
    phases = [stats for r in results for stats in (r.healthz, r.payments)]
    return 0 if all(stats.ok for stats in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
