"""Chaos: payments under load while `paymesh serve` is killed with SIGKILL, then an audit.

    python benchmarks/chaos.py                    # 40 s at 25 orders/s, 20 kills
    python benchmarks/chaos.py --faults           # the same, the PSPs misbehaving too
    python benchmarks/chaos.py --kills 40 --duration 90 --json chaos.json

The three PSP sandboxes run as their own `paymesh sandbox` process for the whole run, so
their records outlive every kill and are the truth the audit compares with. Simulated
shop clients place orders at an open-loop rate: payments routed over Stripe, Adyen and
PayPal by a routing table or named with `connector`, declines, manual captures (full and
partial), cancels, refunds and idempotent replays. Each request carries an
`Idempotency-Key` and is retried with the same key when it got no answer (the server died
under it), as a real client does. Meanwhile `paymesh serve` is killed with SIGKILL at
random moments and started again at once; each restart is timed from spawn to /readyz 200
and to a paid probe payment.

When the load ends (and every kill is done) the run lets recovery finish: PSP faults off,
one clean restart with a short recovery grace, a wait until nothing is pending and the
outbox is empty. Then the server stops, each sandbox's `GET /_ledger` is read, the SQLite
store is read read-only, and `chaos_audit.audit` checks every invariant (see its table).
The audit is printed as a table; the exit status is 1 on any breach, 2 if the run could not
be set up, 130 on Ctrl-C. On a breach the data dir (store, server and sandbox logs) is kept.

Process kinds: today one `api` process (the embedded server: API, event bus, recovery).
The killer picks its victim among `Fleet.killable()`, and readiness is per kind, so worker
processes are one more kind when the scale-out issue brings them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Run as a script, only benchmarks/ is on the path; the audit lives beside us as a module.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.chaos_audit import (
    AckCancel,
    AckCapture,
    Acknowledged,
    AckPayment,
    AckRefund,
    Check,
    KeyWait,
    LedgerEntry,
    Replay,
    Restart,
    audit,
    read_store,
)

PSPS = ("stripe", "adyen", "paypal")
#: The PSP-fault profile of `--faults`, set on all three sandboxes for the load.
FAULTS = {
    "error_rate": 0.10,
    "timeout_rate": 0.05,
    "timeout_hold_ms": 3000,
    "webhook_duplicate_rate": 0.25,
    "webhook_reorder": True,
}
NO_FAULTS = {
    "error_rate": 0.0,
    "rate_limit_rate": 0.0,
    "timeout_rate": 0.0,
    "latency_ms": 0,
    "webhook_delay_ms": 0,
    "webhook_duplicate_rate": 0.0,
    "webhook_reorder": False,
}
#: Orders by kind, with their share of the load.
FLOWS = {
    "pay": 0.48,
    "pay_on_psp": 0.10,
    "decline": 0.08,
    "capture": 0.12,
    "cancel": 0.03,
    "refund": 0.13,
    "replay": 0.06,
}
ROUTING = {
    "routes": [
        {
            "name": "spread",
            "connectors": list(PSPS),
            "weights": {"stripe": 34, "adyen": 33, "paypal": 33},
        }
    ],
    "default": list(PSPS),
}
DECLINE_TOKEN = "pm_card_chargeDeclinedInsufficientFunds"
UNSETTLED = frozenset({"pending", "processing"})


class SetupError(RuntimeError):
    """The sandbox or the server could not be started; nothing was audited."""


# --------------------------------------------------------------------------- processes


class Process:
    """One OS process of the run, in its own session so that a kill takes its children too.

    Output is appended to one log per process across restarts, for a post-mortem."""

    def __init__(self, kind: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.kind = kind
        self.argv = argv
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill9(self) -> None:
        self._signal_and_wait(signal.SIGKILL, 10.0)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it takes longer than `timeout`."""
        if not self._signal_and_wait(signal.SIGTERM, timeout):
            self._signal_and_wait(signal.SIGKILL, 10.0)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> bool:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return True  # never signal a pid we already reaped: it may be someone else's now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Fleet:
    """The sandbox process and the paymesh processes the killer may choose from."""

    data_dir: Path
    sandbox: Process
    api: Process
    api_url: str
    sandbox_url: str

    def killable(self) -> list[Process]:
        # A `--workers N` option adds worker processes here, each with its own readiness.
        return [self.api]

    def stop_all(self) -> None:
        for process in (self.api, self.sandbox):
            process.stop()


def build_fleet(paymesh: str, data_dir: Path, psp_timeout: float) -> Fleet:
    api_port, sandbox_port = _free_port(), _free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    sandbox = Process(
        "sandbox",
        [
            paymesh,
            "sandbox",
            "--port",
            str(sandbox_port),
            "--webhook-base",
            api_url,
            "--data-dir",
            str(data_dir),
        ],
        dict(os.environ),
        data_dir / "sandbox.log",
    )
    env = {
        **os.environ,
        "PAYMESH_RATE_LIMIT": "0",
        "PAYMESH_PSP_TIMEOUT": f"{psp_timeout:g}",
        "PAYMESH_PAYPAL_TRUSTED_CERT": str(data_dir / "sandbox" / "paypal-webhook-cert.pem"),
    }
    for psp in PSPS:
        env[f"PAYMESH_{psp.upper()}_API_BASE"] = f"{sandbox_url}/sandbox/{psp}"
    api = Process(
        "api",
        [
            paymesh,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ],
        env,
        data_dir / "serve.log",
    )
    return Fleet(data_dir, sandbox, api, api_url, sandbox_url)


def create_key(paymesh: str, data_dir: Path) -> str:
    command = [paymesh, "keys", "create", "--merchant", "chaos", "--data-dir", str(data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SetupError(f"`{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")
    return lines[-1].strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _paymesh_executable() -> str:
    beside_python = Path(sys.executable).with_name("paymesh")
    in_repo = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "paymesh"
    for candidate in (beside_python, in_repo):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("paymesh")
    if found is None:
        raise SetupError("no `paymesh` executable found; install the package first")
    return found


# --------------------------------------------------------------------------- the clients


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool


@dataclass
class LoadStats:
    orders: Counter[str] = field(default_factory=Counter)  # started, by kind
    completed: int = 0
    gave_up: int = 0  # a request still unanswered when the client's patience ran out
    gave_up_on: list[str] = field(default_factory=list)
    abandoned: int = 0  # still running when the drain timed out
    requests: int = 0
    retries: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # "201", "402 card_error", ...
    transport_errors: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)  # answers a flow did not expect
    #: Every request answered 409 idempotency_key_in_use, and how long that lasted.
    key_waits: list[KeyWait] = field(default_factory=list)


def _retryable(status: int, body: dict[str, Any]) -> bool:
    """What a client retries with the same key: no answer, a 5xx, or its key still in use."""
    if status >= 500 or status == 429:
        return True
    return status == 409 and body.get("error", {}).get("code") == "idempotency_key_in_use"


def _key_in_use(answer: Answer) -> bool:
    return answer.status == 409 and _retryable(answer.status, answer.body)


class Shop:
    """The merchant's clients: each order is one task, each request retried until answered.

    Every acknowledgement (a 2xx, or a 402 that names its payment) is recorded in `acks`:
    the audit holds paymesh to each of them."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        run_id: str,
        rng: random.Random,
        patience_s: float,
    ) -> None:
        self._session = session
        self._base = base_url
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._run = run_id
        self._rng = rng
        self._patience = patience_s
        self.acks = Acknowledged()
        self.stats = LoadStats()
        #: Requests that may change something, sent and not yet answered: what a kill cuts.
        self.writes_in_flight = 0

    # -- requests --------------------------------------------------------------------------

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
    ) -> Answer | None:
        """Send until answered (a 5xx, 429 or key-in-use answer counts as unanswered);
        None when patience runs out."""
        headers = dict(self._auth)
        if key is not None:
            headers["Idempotency-Key"] = key
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        give_up_at = time.monotonic() + self._patience
        attempt = 0
        key_in_use_since: float | None = None
        while True:
            self.stats.requests += 1
            answer = await self._send(method, path, headers, data)
            if key_in_use_since is None and answer is not None and _key_in_use(answer):
                key_in_use_since = time.monotonic()
            done = answer is not None and not _retryable(answer.status, answer.body)
            out_of_patience = not done and time.monotonic() >= give_up_at
            if key_in_use_since is not None and (done or out_of_patience):
                self.stats.key_waits.append(
                    KeyWait(f"{method} {path} key={key}", time.monotonic() - key_in_use_since, done)
                )
            if done:
                return answer
            attempt += 1
            if out_of_patience:
                self.stats.gave_up += 1
                self.stats.gave_up_on.append(
                    f"{method} {path} key={key} after {attempt} tries: "
                    + ("no answer" if answer is None else f"{answer.status} {answer.body}")
                )
                return None
            self.stats.retries += 1
            # Exponential with full jitter, capped: clients back off from a dead server.
            await asyncio.sleep(self._rng.uniform(0.05, min(2.0, 0.1 * 2**attempt)))

    async def _send(
        self, method: str, path: str, headers: dict[str, str], data: bytes | None
    ) -> Answer | None:
        writes = 1 if method != "GET" else 0
        self.writes_in_flight += writes
        try:
            async with self._session.request(
                method, self._base + path, headers=headers, data=data
            ) as response:
                raw = await response.read()
                status = response.status
                replayed = response.headers.get("Idempotent-Replayed") == "true"
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.transport_errors[type(exc).__name__] += 1
            return None
        finally:
            self.writes_in_flight -= writes
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        error = body.get("error")
        kind = f" {error.get('type')}" if isinstance(error, dict) else ""
        self.stats.answers[f"{status}{kind}"] += 1
        return Answer(status, body, replayed)

    # -- orders ----------------------------------------------------------------------------

    def pick_flow(self, flows: Sequence[str]) -> str:
        return self._rng.choices(list(flows), weights=[FLOWS[f] for f in flows])[0]

    async def order(self, n: int, flow: str) -> None:
        self.stats.orders[flow] += 1
        order_id = f"{self._run}-{n}"
        body: dict[str, Any] = {
            "amount": self._rng.randint(100, 50_000),
            "currency": self._rng.choice(("usd", "eur")),
            "customer_id": f"cus_{n}",
            "payment_method": DECLINE_TOKEN if flow == "decline" else "pm_card_visa",
            "metadata": {"order_id": order_id},
        }
        if flow == "pay_on_psp":
            body["connector"] = self._rng.choice(PSPS)
        if flow in ("capture", "cancel"):
            body["capture_method"] = "manual"
        key = f"{order_id}-create"
        payment = await self.create(body, key)
        if payment is None:
            return
        if flow in ("capture", "cancel", "refund", "replay"):
            payment = await self.settled(payment, body, key)
            if payment is None:
                return
        if flow == "capture" and payment["status"] == "requires_capture":
            await self.capture(payment, order_id)
        elif flow == "cancel" and payment["status"] == "requires_capture":
            await self.cancel(payment, order_id)
        elif flow == "refund" and payment["status"] == "succeeded":
            await self.refunds(payment, order_id)
        elif flow == "replay":
            await self.replay(payment, body, key, order_id)
        self.stats.completed += 1

    async def create(self, body: dict[str, Any], key: str) -> dict[str, Any] | None:
        answer = await self.call("POST", "/v1/payments", body, key)
        if answer is None:
            return None
        payment = self._payment_of(answer)
        if payment is None:
            self.stats.unexpected[f"create {answer.status}"] += 1
            return None
        self._ack(body["metadata"]["order_id"], payment)
        return payment

    def _payment_of(self, answer: Answer) -> dict[str, Any] | None:
        if answer.status in (200, 201):
            return answer.body
        if answer.status == 402:  # a decline or a fraud block: the payment exists
            payment = answer.body.get("error", {}).get("payment")
            return payment if isinstance(payment, dict) else None
        return None

    def _ack(self, order_id: str, payment: dict[str, Any]) -> None:
        self.acks.payments[payment["id"]] = AckPayment(
            order_id=order_id,
            payment_id=payment["id"],
            amount=payment["amount"],
            currency=payment["currency"],
            status=payment["status"],
        )

    async def settled(
        self, payment: dict[str, Any], body: dict[str, Any], key: str
    ) -> dict[str, Any] | None:
        """Wait out a pending answer as the README tells clients: send again with the same
        key (paymesh asks the PSP again); poll a processing one."""
        give_up_at = time.monotonic() + self._patience
        attempt = 0
        while payment["status"] in UNSETTLED:
            if time.monotonic() >= give_up_at:
                self.stats.gave_up += 1
                self.stats.gave_up_on.append(f"payment {payment['id']} still {payment['status']}")
                return None
            attempt += 1
            await asyncio.sleep(self._rng.uniform(0.1, min(2.0, 0.2 * 2**attempt)))
            if payment["status"] == "pending":
                answer = await self.call("POST", "/v1/payments", body, key)
            else:
                answer = await self.call("GET", f"/v1/payments/{payment['id']}")
            if answer is None:
                return None
            fresh = self._payment_of(answer)
            if fresh is None:
                self.stats.unexpected[f"settle {answer.status}"] += 1
                return None
            payment = fresh
            self._ack(body["metadata"]["order_id"], payment)
        return payment

    async def capture(self, payment: dict[str, Any], order_id: str) -> None:
        partial = self._rng.random() < 0.4 and payment["amount"] > 1
        body = {"amount": self._rng.randint(1, payment["amount"] - 1)} if partial else {}
        answer = await self.call(
            "POST", f"/v1/payments/{payment['id']}/capture", body, f"{order_id}-capture"
        )
        if answer is None:
            return
        if answer.status == 200 and answer.body.get("status") == "succeeded":
            self.acks.captures.append(AckCapture(payment["id"], answer.body["amount_captured"]))
            self._ack(order_id, answer.body)
        else:
            self.stats.unexpected[f"capture {answer.status}"] += 1

    async def cancel(self, payment: dict[str, Any], order_id: str) -> None:
        answer = await self.call(
            "POST", f"/v1/payments/{payment['id']}/cancel", {}, f"{order_id}-cancel"
        )
        if answer is None:
            return
        if answer.status == 200 and answer.body.get("status") == "canceled":
            self.acks.cancels.append(AckCancel(payment["id"]))
            self._ack(order_id, answer.body)
        else:
            self.stats.unexpected[f"cancel {answer.status}"] += 1

    async def refunds(self, payment: dict[str, Any], order_id: str) -> None:
        captured = payment["amount_captured"]
        first: dict[str, Any] = {}
        if captured > 1 and self._rng.random() < 0.7:
            first = {"amount": self._rng.randint(1, captured - 1)}
        if not await self.refund(payment["id"], first, f"{order_id}-refund-1"):
            return
        if first and self._rng.random() < 0.5:  # and later the rest
            await self.refund(payment["id"], {}, f"{order_id}-refund-2")

    async def refund(self, payment_id: str, body: dict[str, Any], key: str) -> bool:
        answer = await self.call("POST", f"/v1/payments/{payment_id}/refunds", body, key)
        if answer is None:
            return False
        if answer.status not in (200, 201):
            self.stats.unexpected[f"refund {answer.status}"] += 1
            return False
        self.acks.refunds.append(
            AckRefund(payment_id, answer.body["id"], answer.body["amount"], answer.body["status"])
        )
        return True

    async def replay(
        self, payment: dict[str, Any], body: dict[str, Any], key: str, order_id: str
    ) -> None:
        answer = await self.call("POST", "/v1/payments", body, key)
        if answer is None:
            return
        again = self._payment_of(answer)
        self.acks.replays.append(
            Replay(order_id, payment["id"], None if again is None else again.get("id"))
        )
        if again is not None:
            self._ack(order_id, again)

    async def probe(self, n: int) -> bool:
        """The restart's proof of service: one payment through to `succeeded`."""
        order_id = f"{self._run}-probe-{n}"
        body = {
            "amount": 1000 + n,
            "currency": "usd",
            "customer_id": f"cus_probe_{n}",
            "payment_method": "pm_card_visa",
            "metadata": {"order_id": order_id},
        }
        key = f"{order_id}-create"
        payment = await self.create(body, key)
        if payment is not None:
            payment = await self.settled(payment, body, key)
        return payment is not None and payment["status"] == "succeeded"


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Settings:
    duration: float
    rate: float
    kills: int
    faults: bool
    seed: int
    psp_timeout: float
    patience: float
    drain_timeout: float
    settle_timeout: float
    startup_timeout: float
    flows: tuple[str, ...] = tuple(FLOWS)


@dataclass
class Outcome:
    restarts: list[Restart] = field(default_factory=list)
    load_s: float = 0.0
    settle_s: float = 0.0
    settled: bool = False
    left_unsettled: dict[str, int] = field(default_factory=dict)
    ledger: list[LedgerEntry] = field(default_factory=list)


class Chaos:
    def __init__(self, settings: Settings, fleet: Fleet, api_key: str, console: Console) -> None:
        self.s = settings
        self.fleet = fleet
        self.api_key = api_key
        self.console = console
        self.rng = random.Random(settings.seed)
        self.outcome = Outcome()
        self._kills_done = asyncio.Event()
        self._flows: set[asyncio.Task[None]] = set()
        self._probes = 0
        self._client: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        assert self._client is not None
        return self._client

    async def run(self) -> Shop:
        timeout = aiohttp.ClientTimeout(total=20)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=256)
        ) as session:
            self._client = session
            shop = Shop(
                session,
                self.fleet.api_url,
                self.api_key,
                f"o{self.s.seed}",
                random.Random(self.s.seed + 1),
                self.s.patience,
            )
            await self._bring_up(session, shop)
            await self._chaos(shop)
            await self._recover(session)
        self.outcome.ledger = await ledgers(self.fleet.sandbox_url)
        return shop

    # -- setup -----------------------------------------------------------------------------

    async def _bring_up(self, session: aiohttp.ClientSession, shop: Shop) -> None:
        fleet = self.fleet
        fleet.sandbox.spawn()
        if not await _poll(
            lambda: _ok(session, f"{fleet.sandbox_url}/sandbox/stripe/_config"),
            self.s.startup_timeout,
            fleet.sandbox,
        ):
            raise SetupError(f"the sandbox did not start:\n{fleet.sandbox.log_tail()}")
        fleet.api.spawn()
        if await self._serving(shop) is None:
            raise SetupError(f"paymesh serve did not serve:\n{fleet.api.log_tail()}")
        answer = await shop.call("PUT", "/v1/routing", ROUTING)
        if answer is None or answer.status != 200:
            raise SetupError(f"PUT /v1/routing failed: {answer}")
        if self.s.faults:
            await _configure_faults(session, fleet.sandbox_url, FAULTS)

    async def _serving(self, shop: Shop) -> tuple[float, float | None] | None:
        """Seconds from now to /readyz 200 and to a paid probe; None if it never got ready."""
        started = time.monotonic()
        api = self.fleet.api
        if not await _poll(
            lambda: _ok(self._session(), f"{self.fleet.api_url}/readyz"),
            self.s.startup_timeout,
            api,
        ):
            return None
        ready = time.monotonic() - started
        self._probes += 1
        paid = await shop.probe(self._probes)
        return ready, (time.monotonic() - started) if paid else None

    # -- load and kills --------------------------------------------------------------------

    async def _chaos(self, shop: Shop) -> None:
        started = time.monotonic()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
        )
        killer = asyncio.create_task(self._killer(shop, started))
        arrivals = asyncio.create_task(self._arrivals(shop, started))
        try:
            with Progress(*columns, console=self.console) as progress:
                bar = progress.add_task("load + kills", total=self.s.duration, status="")

                def show(label: str) -> None:
                    progress.update(
                        bar,
                        description=label,
                        completed=min(self.s.duration, time.monotonic() - started),
                        status=_status(shop, self.outcome, self.s.kills, self._flows),
                    )

                while not arrivals.done():
                    show("load + kills")
                    await asyncio.sleep(0.25)
                self.outcome.load_s = time.monotonic() - started
                await killer  # raises if a restart never got ready
                drain_until = time.monotonic() + self.s.drain_timeout
                while self._flows and time.monotonic() < drain_until:
                    show("draining")
                    await asyncio.sleep(0.25)
                show("drained")
        finally:
            for task in (killer, arrivals, *self._flows):
                if not task.done():
                    task.cancel()
            shop.stats.abandoned += len(self._flows)
            await asyncio.gather(killer, arrivals, *self._flows, return_exceptions=True)

    async def _arrivals(self, shop: Shop, started: float) -> None:
        """Open loop: orders arrive at `rate` (Poisson) whatever the server is doing, until
        the duration is over and every kill has been made."""
        n = 0
        next_at = started
        while time.monotonic() - started < self.s.duration or not self._kills_done.is_set():
            now = time.monotonic()
            if now < next_at:
                await asyncio.sleep(min(next_at - now, 0.05))
                continue
            n += 1
            task = asyncio.create_task(shop.order(n, shop.pick_flow(self.s.flows)))
            self._flows.add(task)
            task.add_done_callback(self._flows.discard)
            next_at += self.rng.expovariate(self.s.rate)

    async def _killer(self, shop: Shop, started: float) -> None:
        try:
            for done in range(self.s.kills):
                # Spread what is left of the kills over what is left of the duration, at
                # random: some land mid-request, some during the start-up recovery pass.
                left_s = self.s.duration - (time.monotonic() - started)
                restart_s = _mean([r.serving_s or 0.0 for r in self.outcome.restarts]) or 1.0
                mean_gap = max(0.3, left_s / (self.s.kills - done) - restart_s)
                await asyncio.sleep(self.rng.uniform(0.05, 2 * mean_gap))
                if self.rng.random() < 0.5:
                    await _cut_a_request(shop, self.rng)
                victim = self.rng.choice(self.fleet.killable())
                at = time.monotonic() - started
                cut = shop.writes_in_flight
                victim.kill9()
                victim.spawn()
                timing = await self._serving(shop)
                ready, serving = (None, None) if timing is None else timing
                self.outcome.restarts.append(Restart(victim.kind, at, ready, serving, cut))
                if ready is None:
                    raise SetupError(
                        f"{victim.kind} did not come back after kill {done + 1}:"
                        f"\n{victim.log_tail()}"
                    )
        finally:
            self._kills_done.set()

    # -- recovery --------------------------------------------------------------------------

    async def _recover(self, session: aiohttp.ClientSession) -> None:
        """Faults off, one clean restart with a short recovery grace, then wait until nothing
        is unsettled and the outbox is empty (or the settle timeout)."""
        started = time.monotonic()
        fleet = self.fleet
        await _configure_faults(session, fleet.sandbox_url, NO_FAULTS)
        fleet.api.stop()
        fleet.api.env = {
            **fleet.api.env,
            "PAYMESH_RECOVERY_GRACE": "1",
            "PAYMESH_RECOVERY_INTERVAL": "1",
        }
        fleet.api.spawn()
        if not await _poll(
            lambda: _ok(session, f"{fleet.api_url}/readyz"), self.s.startup_timeout, fleet.api
        ):
            raise SetupError(f"paymesh serve did not restart:\n{fleet.api.log_tail()}")
        db = fleet.data_dir / "paymesh.db"
        auth = {"Authorization": f"Bearer {self.api_key}"}
        with self.console.status("recovery: waiting for every payment to settle"):
            while True:
                left = await _unsettled(session, fleet.api_url, auth, db)
                self.outcome.left_unsettled = left
                if not any(left.values()):
                    self.outcome.settled = True
                    break
                if time.monotonic() - started > self.s.settle_timeout:
                    break
                await asyncio.sleep(0.5)
        self.outcome.settle_s = time.monotonic() - started
        fleet.api.stop()


async def _cut_a_request(shop: Shop, rng: random.Random) -> None:
    """Half the kills are aimed: they wait (up to 1 s) for a write in flight, then strike
    within a few ms, somewhere between its arrival and its answer."""
    for _ in range(1000):
        if shop.writes_in_flight:
            break
        await asyncio.sleep(0.001)
    await asyncio.sleep(rng.uniform(0.0, 0.004))


async def _ok(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            await response.read()
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _poll(check: Callable[[], Awaitable[bool]], within_s: float, process: Process) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and process.alive:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def _configure_faults(
    session: aiohttp.ClientSession, sandbox_url: str, faults: dict[str, Any]
) -> None:
    for psp in PSPS:
        async with session.put(f"{sandbox_url}/sandbox/{psp}/_config", json=faults) as response:
            if response.status != 200:
                raise SetupError(f"{psp} sandbox refused {faults}: {await response.text()}")


async def ledgers(sandbox_url: str) -> list[LedgerEntry]:
    rows: list[LedgerEntry] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for psp in PSPS:
            async with session.get(f"{sandbox_url}/sandbox/{psp}/_ledger") as response:
                if response.status != 200:
                    raise SetupError(f"{psp} ledger: HTTP {response.status}")
                ledger = await response.json()
            rows += [LedgerEntry.from_json(psp, row) for row in ledger["payments"]]
    return rows


async def _unsettled(
    session: aiohttp.ClientSession, api_url: str, auth: dict[str, str], db: Path
) -> dict[str, int]:
    """What recovery still has to do: unsettled payments (over the API) and the outbox (a
    read-only look at the file; SQLite's WAL lets a reader in beside the writer)."""
    left: dict[str, int] = {}
    for status in sorted(UNSETTLED):
        url = f"{api_url}/v1/payments?status={status}&limit=100"
        try:
            async with session.get(url, headers=auth) as response:
                left[status] = len((await response.json())["data"])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            left[status] = -1
    left.update(await asyncio.to_thread(_outbox_backlog, db))
    return left


def _outbox_backlog(db: Path) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        events = conn.execute("SELECT count(*) FROM events WHERE delivered = 0").fetchone()[0]
        pending = conn.execute(
            "SELECT count(*) FROM deliveries WHERE status = 'pending'"
        ).fetchone()[0]
    finally:
        conn.close()
    return {"events not routed": int(events), "deliveries pending": int(pending)}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _status(shop: Shop, outcome: Outcome, kills: int, flows: set[asyncio.Task[None]]) -> str:
    return (
        f"kills {len(outcome.restarts)}/{kills} · orders {sum(shop.stats.orders.values())} "
        f"· acked {len(shop.acks.payments)} · in flight {len(flows)} "
        f"· retries {shop.stats.retries}"
    )


# --------------------------------------------------------------------------- output


def render(
    console: Console, settings: Settings, shop: Shop, outcome: Outcome, checks: Sequence[Check]
) -> None:
    profile = (
        "PSP faults (10% 5xx, 5% timeouts, duplicated + reordered webhooks)"
        if settings.faults
        else "clean PSPs"
    )
    stats = shop.stats
    console.print(
        f"chaos: {profile} · {settings.duration:g}s at {settings.rate:g} orders/s · "
        f"seed {settings.seed} · {len(outcome.restarts)} SIGKILLs of paymesh serve\n"
        f"load: {sum(stats.orders.values())} orders ({_counts(stats.orders)}) over "
        f"{outcome.load_s:.1f}s; {stats.completed} completed, {stats.gave_up} gave up, "
        f"{stats.abandoned} abandoned; {stats.requests} requests, {stats.retries} retries; "
        f"transport errors: {_counts(stats.transport_errors) or 'none'}; "
        f"unexpected answers: {_counts(stats.unexpected) or 'none'}\n"
        f"recovery: {'settled' if outcome.settled else 'NOT settled'} after "
        f"{outcome.settle_s:.1f}s ({_counts(Counter(outcome.left_unsettled)) or 'nothing left'})"
        f"; ledgers: {len(outcome.ledger)} PSP payments ({_counts(_per_psp(outcome.ledger))})",
        highlight=False,
    )
    table = Table(
        title="Audit: paymesh's store against the PSPs' ledgers",
        title_justify="left",
        show_lines=True,
    )
    table.add_column("invariant")
    table.add_column("checked", justify="right")
    table.add_column("breaches", justify="right")
    table.add_column("detail", overflow="fold")
    for check in checks:
        if check.kind == "report":
            breaches = "-"
            detail = check.summary
        else:
            breaches = f"[red]{check.breach_count}[/red]" if check.breach_count else "0"
            shown = check.breaches[:3]
            more = check.breach_count - len(shown)
            detail = "\n".join(shown + ([f"… {more} more (see --json)"] if more else []))
            if check.summary:
                detail = f"{check.summary}\n{detail}" if detail else check.summary
        table.add_row(check.name, str(check.checked), breaches, detail)
    console.print(table)


def _per_psp(ledger: Sequence[LedgerEntry]) -> Counter[str]:
    return Counter(f"{row.psp}{' charged' if row.charged else ''}" for row in ledger)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common() if v)


def write_json(
    path: Path, settings: Settings, shop: Shop, outcome: Outcome, checks: Sequence[Check]
) -> None:
    stats = shop.stats
    document = {
        "profile": "faults" if settings.faults else "clean",
        "settings": asdict(settings),
        "faults": FAULTS if settings.faults else None,
        "kills": len(outcome.restarts),
        "restarts": [asdict(r) for r in outcome.restarts],
        "load": {
            "seconds": round(outcome.load_s, 2),
            "orders": dict(stats.orders),
            "completed": stats.completed,
            "gave_up": stats.gave_up,
            "gave_up_on": stats.gave_up_on,
            "abandoned": stats.abandoned,
            "requests": stats.requests,
            "retries": stats.retries,
            "answers": dict(stats.answers),
            "transport_errors": dict(stats.transport_errors),
            "unexpected": dict(stats.unexpected),
            "key_in_use_waits": [asdict(w) for w in stats.key_waits],
            "acknowledged": {
                "payments": len(shop.acks.payments),
                "captures": len(shop.acks.captures),
                "cancels": len(shop.acks.cancels),
                "refunds": len(shop.acks.refunds),
                "replays": len(shop.acks.replays),
            },
        },
        "recovery": {
            "settled": outcome.settled,
            "seconds": round(outcome.settle_s, 2),
            "left": outcome.left_unsettled,
        },
        "ledger_rows": dict(_per_psp(outcome.ledger)),
        "checks": [c.to_dict() for c in checks],
        "breaches": sum(c.breach_count for c in checks if c.failed),
        "ok": not any(c.failed for c in checks),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


# --------------------------------------------------------------------------- entry


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Kill paymesh serve with SIGKILL under load, then audit every invariant "
        "against the PSP sandboxes' ledgers."
    )
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of load (40)")
    parser.add_argument("--rate", type=float, default=25.0, help="orders per second (25)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs during the load (20)")
    parser.add_argument(
        "--faults",
        action="store_true",
        help="PSP faults on all three sandboxes: 10%% 5xx, 5%% timeouts, "
        "25%% duplicated webhooks, reordered webhooks",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the mix and kill times")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write everything as JSON")
    parser.add_argument(
        "--psp-timeout", type=float, default=2.0, help="PAYMESH_PSP_TIMEOUT for the server, s (2)"
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=90.0,
        help="how long a client retries one request before giving up, s "
        "(90: longer than the 60 s lease of an idempotency key)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=90.0,
        help="after the load, how long unfinished orders may go on, s",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=90.0,
        help="how long recovery may take before the audit, s",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=30.0,
        help="a process not ready within this is a failure, s",
    )
    parser.add_argument(
        "--flows",
        type=_flow_list,
        default=tuple(FLOWS),
        help=f"order kinds to send, comma-separated (default all: {','.join(FLOWS)})",
    )
    parser.add_argument("--paymesh", help="paymesh executable (default: the venv's)")
    parser.add_argument(
        "--keep-data", action="store_true", help="keep the data dir (kept anyway on a breach)"
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0 or args.kills < 0:
        parser.error("--duration and --rate must be positive, --kills not negative")
    return args


def _flow_list(text: str) -> tuple[str, ...]:
    flows = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(flows) - set(FLOWS))
    if not flows or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown order kinds {unknown}; known: {', '.join(FLOWS)}"
        )
    return flows


def _run_async(chaos: Chaos) -> Shop:
    try:
        import uvloop  # the client shares 2 cores with the server and the sandboxes
    except ImportError:
        return asyncio.run(chaos.run())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(chaos.run())


def _exit_on_sigterm() -> None:
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # so `finally` stops our processes

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _exit_on_sigterm()
    settings = Settings(
        duration=args.duration,
        rate=args.rate,
        kills=args.kills,
        faults=args.faults,
        seed=args.seed,
        psp_timeout=args.psp_timeout,
        patience=args.patience,
        drain_timeout=args.drain_timeout,
        settle_timeout=args.settle_timeout,
        startup_timeout=args.startup_timeout,
        flows=args.flows,
    )
    console = Console(width=None if sys.stdout.isatty() else 160)
    data_dir = Path(tempfile.mkdtemp(prefix="paymesh-chaos-"))
    keep = args.keep_data
    fleet: Fleet | None = None
    try:
        paymesh = args.paymesh or _paymesh_executable()
        api_key = create_key(paymesh, data_dir)
        fleet = build_fleet(paymesh, data_dir, settings.psp_timeout)
        chaos = Chaos(settings, fleet, api_key, console)
        shop = _run_async(chaos)
        fleet.stop_all()
        store = read_store(data_dir / "paymesh.db")
        checks = audit(
            shop.acks,
            store,
            chaos.outcome.ledger,
            chaos.outcome.restarts,
            shop.stats.answers,
            shop.stats.key_waits,
        )
        render(console, settings, shop, chaos.outcome, checks)
        if args.json:
            write_json(args.json, settings, shop, chaos.outcome, checks)
        breached = any(c.failed for c in checks)
        keep = keep or breached
        return 1 if breached else 0
    except SetupError as exc:
        console.print(f"[red]chaos run failed:[/red] {exc}", highlight=False)
        keep = True
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; processes stopped")
        return 130
    finally:
        if fleet is not None:
            fleet.stop_all()
        if keep:
            console.print(
                f"data dir (store, serve.log, sandbox.log) kept in {data_dir}", highlight=False
            )
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
