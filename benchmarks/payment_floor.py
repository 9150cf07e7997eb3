"""The floor under issue 18's CPU target: what a payment's exchanges cost on this stack alone.

A payment in paymesh is, at the least: the API request in, the PSP call out, the PSP's
webhook in, one event delivered out to a merchant's endpoint, and the writes that make each
durable. This script builds a payment service that does only that, with the same libraries
and settings paymesh runs: uvicorn on httptools and uvloop, Starlette, aiohttp for calls out,
msgspec for JSON, and SQLite opened by paymesh's own `connect` (WAL, `synchronous=FULL`)
behind paymesh's own `GroupCommitWriter`. A PSP stub answers Stripe's form-encoded
create-and-confirm and signs its webhook with HMAC-SHA256. No fraud scoring, no rules, no
idempotency record beyond a unique key, no metrics, no tracing, no validation beyond decoding.

Then it drives the floor and a real `paymesh serve` (sandboxes in their own process, via
`wrk_payments.py`) with the same wrk runs, alternating: `/healthz`, then payments. It prints
each one's payments/s, p99, CPU per payment from /proc (server, and PSP stub or sandbox), the
ratio payments/s / healthz req/s, and the ratio paymesh / floor. The floor's figures are what
the stack costs before any of paymesh's own logic: issue 18's 1.0 ms (server), 0.3 ms
(sandbox), 1,500 payments/s and ratio 0.15 are to be read against them. It exits non-zero if
a floor payment went without its webhook or its delivery, or any answer was not 2xx.

    .venv/bin/python -m benchmarks.payment_floor --rounds 2 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import os
import resource
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import msgspec

from benchmarks.wrk_payments import _PAYMENTS_LUA, _parse
from paymesh.adapters.sqlite.schema import connect
from paymesh.adapters.sqlite.writer import WRITE_LOCK_SUFFIX, GroupCommitWriter

# -- the floor's payment service -----------------------------------------------------------


_TABLES = (
    "CREATE TABLE IF NOT EXISTS payments (id TEXT PRIMARY KEY, key TEXT UNIQUE,"
    " status TEXT, psp_ref TEXT, doc BLOB);"
    "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, payment_id TEXT, doc BLOB);"
    "CREATE TABLE IF NOT EXISTS webhooks (id TEXT PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT PRIMARY KEY, status INTEGER);"
)


def open_writer(path: str) -> GroupCommitWriter:
    """paymesh's own connection settings and group-committing writer, over the floor's tables."""
    conn = connect(path)
    conn.executescript(_TABLES)
    return GroupCommitWriter(conn, lock_path=path + WRITE_LOCK_SUFFIX)


def _lifespan(startup: Callable[[], Any]) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        await startup()
        yield

    return lifespan


class NewPayment(msgspec.Struct):
    amount: int
    currency: str
    customer_id: str
    payment_method: str


def floor_api(psp_url: str, merchant_url: str, db: str, secret: str, api_key: str) -> Any:
    import aiohttp
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    decode = msgspec.json.Decoder(NewPayment).decode
    state: dict[str, Any] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def startup() -> None:
        state["writer"] = open_writer(db)
        state["http"] = aiohttp.ClientSession()

    async def create(request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get("authorization", ""), f"Bearer {api_key}"):
            return Response(status_code=401)
        new = decode(await request.body())
        key = request.headers["idempotency-key"]
        payment_id = "pay_" + secrets.token_hex(12)
        doc = msgspec.json.encode({"id": payment_id, **msgspec.structs.asdict(new)})
        writer: GroupCommitWriter = state["writer"]
        await writer.submit(
            lambda c: c.execute(
                "INSERT INTO payments VALUES (?, ?, 'pending', NULL, ?)", (payment_id, key, doc)
            )
        )
        form = urlencode(
            {
                "amount": new.amount,
                "currency": new.currency,
                "payment_method": new.payment_method,
                "confirm": "true",
                "metadata[paymesh_payment_id]": payment_id,
            }
        )
        async with state["http"].post(
            psp_url + "/v1/payment_intents",
            data=form,
            headers={
                "Authorization": "Bearer sk_floor",
                "Idempotency-Key": key,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        ) as answer:
            intent = msgspec.json.decode(await answer.read())
        event_id = "evt_" + secrets.token_hex(12)
        event = msgspec.json.encode(
            {"id": event_id, "type": "payment.succeeded", "payment_id": payment_id}
        )
        await writer.submit(
            lambda c: (
                c.execute(
                    "UPDATE payments SET status = ?, psp_ref = ? WHERE id = ?",
                    (intent["status"], intent["id"], payment_id),
                ),
                c.execute("INSERT INTO events VALUES (?, ?, ?)", (event_id, payment_id, event)),
            )
        )
        task = asyncio.create_task(deliver(event_id, event))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return Response(
            doc, status_code=201, media_type="application/json"
        )  # the payment as stored

    async def deliver(event_id: str, event: bytes) -> None:
        stamp = str(int(time.time()))
        signature = hmac.new(secret.encode(), f"{stamp}.".encode() + event, "sha256").hexdigest()
        async with state["http"].post(
            merchant_url,
            data=event,
            headers={"Content-Type": "application/json", "Paymesh-Signature": signature},
        ) as answer:
            status = answer.status
        await state["writer"].submit(
            lambda c: c.execute("INSERT INTO deliveries VALUES (?, ?)", (event_id, status))
        )

    async def webhook(request: Request) -> Response:
        body = await request.body()
        stamp, _, given = request.headers["stripe-signature"].partition(",v1=")
        stamp = stamp.removeprefix("t=")
        expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, "sha256").hexdigest()
        if not hmac.compare_digest(expected, given):
            return Response(status_code=400)
        event = msgspec.json.decode(body)
        intent = event["data"]["object"]
        await state["writer"].submit(
            lambda c: (
                c.execute("INSERT OR IGNORE INTO webhooks VALUES (?)", (event["id"],)),
                c.execute(
                    "UPDATE payments SET status = ? WHERE psp_ref = ?",
                    (intent["status"], intent["id"]),
                ),
            )
        )
        return Response(b'{"received":true}', media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/payments", create, methods=["POST"]),
            Route("/webhooks/stripe", webhook, methods=["POST"]),
            Route("/healthz", healthz),
        ],
        lifespan=_lifespan(startup),
    )


def floor_psp(webhook_url: str, secret: str) -> Any:
    import aiohttp
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    state: dict[str, Any] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def startup() -> None:
        state["http"] = aiohttp.ClientSession()

    async def create_intent(request: Request) -> Response:
        if request.headers.get("authorization") != "Bearer sk_floor":
            return Response(status_code=401)
        form = dict(parse_qsl((await request.body()).decode()))
        intent = {
            "id": "pi_" + secrets.token_hex(12),
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "currency": form["currency"],
            "status": "succeeded",
            "metadata": {"paymesh_payment_id": form["metadata[paymesh_payment_id]"]},
        }
        task = asyncio.create_task(send_webhook(intent))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return Response(msgspec.json.encode(intent), media_type="application/json")

    async def send_webhook(intent: dict[str, Any]) -> None:
        body = msgspec.json.encode(
            {
                "id": "evt_" + secrets.token_hex(12),
                "type": "payment_intent.succeeded",
                "data": {"object": intent},
            }
        )
        stamp = str(int(time.time()))
        signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, "sha256").hexdigest()
        async with state["http"].post(
            webhook_url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": f"t={stamp},v1={signature}",
            },
        ) as answer:
            await answer.read()

    async def merchant(request: Request) -> Response:
        await request.body()
        return Response(b"ok")

    return Starlette(
        routes=[
            Route("/v1/payment_intents", create_intent, methods=["POST"]),
            Route("/merchant", merchant, methods=["POST"]),
        ],
        lifespan=_lifespan(startup),
    )


def serve(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


# -- the comparison ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wait_up(url: str) -> None:
    """Until `url` answers (any status: the PSP stub has no GET route, and a 405 is up)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class FloorStack:
    """The floor's API and PSP processes, running; `counts()` reads what its database holds."""

    api_url: str
    api_key: str
    api: subprocess.Popen[bytes]
    psp: subprocess.Popen[bytes]
    db: Path

    def cpu_s(self) -> tuple[float, float]:
        return _cpu_s(self.api.pid), _cpu_s(self.psp.pid)

    def counts(self) -> dict[str, int]:
        """Payments, the webhooks applied and the events delivered (the three must match)."""
        conn = sqlite3.connect(self.db)
        try:
            return {
                table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("payments", "webhooks", "deliveries")
            }
        finally:
            conn.close()


@contextlib.contextmanager
def floor_stack() -> Iterator[FloorStack]:
    """Start the floor's API and PSP stub in their own processes; stop them after."""
    api_port, psp_port = _free_port(), _free_port()
    secret, api_key = secrets.token_hex(16), "sk_" + secrets.token_hex(8)
    with tempfile.TemporaryDirectory() as tmp:
        me = [sys.executable, "-m", "benchmarks.payment_floor"]
        db = Path(tmp) / "floor.db"
        psp = subprocess.Popen(
            [*me, "psp", "--port", str(psp_port), "--secret", secret,
             "--webhook", f"http://127.0.0.1:{api_port}/webhooks/stripe"]
        )  # fmt: skip
        api = subprocess.Popen(
            [*me, "api", "--port", str(api_port), "--secret", secret, "--api-key", api_key,
             "--psp", f"http://127.0.0.1:{psp_port}",
             "--merchant", f"http://127.0.0.1:{psp_port}/merchant", "--db", str(db)]
        )  # fmt: skip
        try:
            _wait_up(f"http://127.0.0.1:{psp_port}/merchant")
            _wait_up(f"http://127.0.0.1:{api_port}/healthz")
            yield FloorStack(f"http://127.0.0.1:{api_port}", api_key, api, psp, db)
        finally:
            for process in (api, psp):
                process.terminate()
                process.wait(10)


def settled(stack: FloorStack, timeout: float = 10.0) -> dict[str, int]:
    """The counts once every payment has its webhook and its delivery (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = stack.counts()
        done = counts["webhooks"] == counts["deliveries"] == counts["payments"]
        if done or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def run_floor(connections: int, duration: int, customers: int) -> dict[str, float]:
    """Start the floor, drive it with wrk, stop it; its figures."""
    with floor_stack() as stack, tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "payments.lua"
        script.write_text(
            _PAYMENTS_LUA.replace("CUSTOMERS", str(customers))
            .replace("KEY", stack.api_key)
            .replace("RUN", secrets.token_hex(8))
        )
        wrk = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
        health = _parse(
            subprocess.run(
                [*wrk, stack.api_url + "/healthz"], capture_output=True, text=True, check=True
            ).stdout
        )
        time.sleep(2)  # as wrk_payments.py: let the health phase's connections close
        before, wrk_before = stack.cpu_s(), _children_cpu_s()
        out = subprocess.run(
            [*wrk, "-s", str(script), stack.api_url + "/v1/payments"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        wrk_cpu = _children_cpu_s() - wrk_before
        counts = settled(stack)  # the last webhooks and deliveries count too
        after = stack.cpu_s()
    ok, load = _load(_parse(out), health)
    return {
        **load,
        "server_ms": 1000 * (after[0] - before[0]) / max(1.0, ok),
        "psp_ms": 1000 * (after[1] - before[1]) / max(1.0, ok),
        "wrk_ms": 1000 * wrk_cpu / max(1.0, ok),
        **{table: float(n) for table, n in counts.items()},
    }


def _load(payments: dict[str, Any], health: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """The payments answered 2xx, and the figures both kinds of run report from wrk's phases
    (each a dict with wrk's requests, seconds, non-2xx and p99)."""
    ok = payments["requests"] - payments["non_2xx"]
    return ok, {
        "payments_per_s": ok / payments["seconds"],
        "healthz_per_s": (health["requests"] - health["non_2xx"]) / health["seconds"],
        "p99_ms": payments["p99_ms"],
        "non_2xx": payments["non_2xx"],
    }


def run_paymesh(connections: int, duration: int, customers: int) -> dict[str, float]:
    """`wrk_payments.py --sandbox-process`: the same load on a real `paymesh serve`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "wrk.json"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.wrk_payments", "--sandbox-process",
             "--connections", str(connections), "--duration", str(duration),
             "--customers", str(customers), "--json", str(out)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        data = json.loads(out.read_text())
    phase = data["payments"]
    ok, load = _load(phase, data["healthz"])
    return {
        **load,
        "server_ms": 1000 * phase["server_cpu_s"] / max(1, ok),
        "psp_ms": 1000 * (phase["sandbox_cpu_s"] or 0.0) / max(1, ok),
    }


def compare(args: argparse.Namespace) -> int:
    rows: list[tuple[str, dict[str, float]]] = []
    for n in range(1, args.rounds + 1):
        floor = run_floor(args.connections, args.duration, args.customers)
        if not floor["webhooks"] == floor["deliveries"] == floor["payments"] or floor["non_2xx"]:
            print(f"the floor lost work: {floor}", file=sys.stderr)
            return 1
        rows.append((f"floor {n}", floor))
        rows.append((f"paymesh {n}", run_paymesh(args.connections, args.duration, args.customers)))
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s POST /v1/payments, "
        f"{args.customers} customers; CPU from /proc over the wrk run"
    )
    print(
        f"{'run':12} {'payments/s':>10} {'p99 ms':>8} {'server ms':>10} {'PSP ms':>8}"
        f" {'healthz/s':>10} {'ratio':>6}"
    )
    for name, r in rows:
        print(
            f"{name:12} {r['payments_per_s']:10.1f} {r['p99_ms']:8.1f} "
            f"{r['server_ms']:10.3f} {r['psp_ms']:8.3f} {r['healthz_per_s']:10.1f} "
            f"{r['payments_per_s'] / r['healthz_per_s']:6.3f}"
        )
    for n in range(args.rounds):
        floor, paymesh = rows[2 * n][1], rows[2 * n + 1][1]
        whole = floor["server_ms"] + floor["psp_ms"] + floor["wrk_ms"]
        cores = os.cpu_count() or 1
        print(
            f"round {n + 1}: the floor's whole payment (server + PSP stub + wrk) {whole:.3f} ms"
            f" of CPU: at most {1000 * cores / whole:.0f} payments/s on {cores} cores"
        )
        print(
            f"round {n + 1}: paymesh / floor, server CPU a payment "
            f"{paymesh['server_ms'] / floor['server_ms']:.2f}, sandbox / PSP stub "
            f"{paymesh['psp_ms'] / floor['psp_ms']:.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(dict(rows), indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role")
    api = sub.add_parser("api", help="(internal) the floor's payment service")
    for flag in ("--port", "--psp", "--merchant", "--db", "--secret", "--api-key"):
        api.add_argument(flag, required=True)
    psp = sub.add_parser("psp", help="(internal) the floor's PSP stub and merchant endpoint")
    for flag in ("--port", "--webhook", "--secret"):
        psp.add_argument(flag, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.role == "api":
        serve(
            floor_api(args.psp, args.merchant, args.db, args.secret, args.api_key), int(args.port)
        )
        return 0
    if args.role == "psp":
        serve(floor_psp(args.webhook, args.secret), int(args.port))
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
