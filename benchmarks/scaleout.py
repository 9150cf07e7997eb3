"""Scale-out, proven: many API processes and workers on PostgreSQL + NATS JetStream.

    python benchmarks/scaleout.py audit --payments 5000 --rate 100 --apis 2 --workers 2
    python benchmarks/scaleout.py bench --apis 1,2,4 --rates 100,200,300 --duration 10
    python benchmarks/scaleout.py bench --pairs 1,2,4 --rates 100,200,300   # make bench-scaleout

`audit` sends payments on a fixed schedule, round-robin over the API processes; a tenth of
them are sent a second time with the same idempotency key, at the same moment, to another
API process. Halfway through it SIGKILLs a worker (and leaves it dead). A rule sends every
`payment.succeeded` to a receiver here. When everything has settled it audits the
PostgreSQL store against the PSP sandboxes' own ledgers and prints one row per promise,
exiting non-zero on any breach.

`bench` measures, for the embedded mode and for 1, 2, 4... API processes (2 workers; or with
`--pairs 1,2,4`, as many workers as API processes), the achieved payments/s, API latency
percentiles and each component's CPU per payment at each offered rate, in one run. Each
configuration first takes `--warmup` seconds of load unmeasured (see `warm_up`).

`statements` counts what PostgreSQL is asked per payment, by kind (BEGIN, COMMIT, SELECT...),
from its own statement log (`log_statement = 'all'` for the measured payments only):

    python benchmarks/scaleout.py statements --payments 300 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.chaos import ledgers  # noqa: E402
from benchmarks.cluster import Cluster  # noqa: E402
from benchmarks.load.server import ProcessTree  # noqa: E402

UNSETTLED = ("pending", "processing")
console = Console()


@dataclass
class Sent:
    """What the clients were told, per idempotency key."""

    answers: dict[str, list[tuple[int, str | None]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


class Receiver:
    """The merchant's endpoint for `payment.succeeded`: counts each event id it gets."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.payments: dict[str, str] = {}

    async def handle(self, request: web.Request) -> web.Response:
        event = await request.json()
        self.seen[event["id"]] += 1
        self.payments[event["id"]] = event["detail"]["payment_id"]
        return web.Response(text="ok")


async def start_receiver(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/hook"


def body(i: int, rng: random.Random) -> dict[str, Any]:
    declined = rng.random() < 0.05
    return {
        "amount": 1000 + i % 5000,
        "currency": "usd",
        "customer_id": f"cus_{i}",
        "payment_method": "pm_card_chargeDeclined" if declined else "pm_card_visa",
        "metadata": {"order": str(i)},
    }


async def send(
    session: aiohttp.ClientSession,
    url: str,
    auth: str,
    payload: dict[str, Any],
    key: str,
    sent: Sent,
    scheduled: float,
) -> None:
    """POST with the key; a 409 `idempotency_key_in_use` (the twin is in flight) or a cut
    connection is sent again with the same key, as a client would."""
    for attempt in range(30):
        try:
            async with session.post(
                f"{url}/v1/payments",
                json=payload,
                headers={"Authorization": f"Bearer {auth}", "Idempotency-Key": key},
            ) as r:
                answer = await r.json()
                if (
                    r.status == 409
                    and answer.get("error", {}).get("code") == "idempotency_key_in_use"
                ):
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                sent.answers[key].append((r.status, answer.get("id")))
                sent.latencies.append(time.monotonic() - scheduled)
                return
        except (aiohttp.ClientError, TimeoutError) as exc:
            sent.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
    sent.errors["gave up"] += 1


async def drive_load(
    urls: list[str],
    auth: str,
    payments: int,
    rate: float,
    duplicates: float,
    seed: int,
    on_half: Any = None,
) -> Sent:
    rng = random.Random(seed)
    sent = Sent()
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        start = time.monotonic()
        for i in range(payments):
            due = start + i / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if on_half and i == payments // 2:
                on_half()
            key = f"order-{seed}-{i}"
            payload = body(i, rng)
            twins = [urls[i % len(urls)]]
            if rng.random() < duplicates:  # the same key, at once, to another process
                twins.append(urls[(i + 1) % len(urls)])
            for url in twins:
                task = asyncio.create_task(send(session, url, auth, payload, key, sent, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return sent


async def settle(cluster: Cluster, receiver: Receiver, within: float) -> dict[str, int]:
    """Wait until nothing is left to do: no unsettled payment, outbox relayed, the streams'
    consumers empty, every succeeded payment's event at the receiver."""
    import nats

    deadline = time.monotonic() + within
    left: dict[str, int] = {}
    nc = await nats.connect(cluster.nats.url) if cluster.nats else None
    try:
        while time.monotonic() < deadline:
            conn = await asyncpg.connect(cluster.dsn)
            try:
                left = {
                    "unsettled payments": await conn.fetchval(
                        "SELECT count(*) FROM payments WHERE status = ANY($1::text[])",
                        list(UNSETTLED),
                    ),
                    "events not relayed": await conn.fetchval(
                        "SELECT count(*) FROM events WHERE NOT delivered"
                    ),
                }
                succeeded = await conn.fetchval(
                    "SELECT count(*) FROM payments WHERE status = 'succeeded'"
                )
            finally:
                await conn.close()
            if nc is not None:
                js = nc.jetstream()
                for stream, durable in (
                    ("PAYMESH_EVENTS", "paymesh-router"),
                    ("PAYMESH_DELIVERIES", "paymesh-deliverer"),
                ):
                    info = await js.consumer_info(stream, durable)
                    left[f"{durable} backlog"] = info.num_pending + info.num_ack_pending
            left["succeeded events not received"] = max(0, succeeded - len(receiver.seen))
            if not any(left.values()):
                return left
            await asyncio.sleep(1.0)
        return left
    finally:
        if nc is not None:
            await nc.close()


@dataclass
class Check:
    name: str
    checked: int
    breaches: list[str]


async def audit(cluster: Cluster, sent: Sent, receiver: Receiver) -> list[Check]:
    conn = await asyncpg.connect(cluster.dsn)
    try:
        payments = {r["id"]: r for r in await conn.fetch("SELECT id, status FROM payments")}
        keys = await conn.fetch("SELECT key FROM idempotency")
        confirmations = Counter(
            r["payment_id"]
            for r in await conn.fetch(
                "SELECT payment_id FROM notifications WHERE template = 'payment_succeeded'"
            )
        )
        dead = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'dead'")
    finally:
        await conn.close()
    rows = await ledgers(cluster.sandbox_url.removesuffix("/sandbox"))
    checks = []

    acked = {
        pid
        for answers in sent.answers.values()
        for status, pid in answers
        if status in (200, 201, 402) and pid
    }
    checks.append(
        Check("acknowledged payments exist", len(acked), [p for p in acked if p not in payments])
    )
    split = [
        k for k, answers in sent.answers.items() if len({pid for _s, pid in answers if pid}) > 1
    ]
    # Every key is a different order: a key that ran twice leaves more payments than keys.
    extra_payments = len(payments) - len(keys)
    checks.append(
        Check(
            "one payment per idempotency key (twins on two processes)",
            len(sent.answers),
            split + ([f"{extra_payments} payments more than keys"] if extra_payments > 0 else []),
        )
    )
    charged = [r for r in rows if r.charged]
    by_ref = Counter(r.reference for r in charged)
    checks.append(
        Check(
            "no PSP charge without a payment",
            len(charged),
            [r.psp_reference for r in charged if r.reference not in payments],
        )
    )
    checks.append(
        Check(
            "exactly one charge per succeeded payment",
            sum(1 for p in payments.values() if p["status"] == "succeeded"),
            [p for p, r in payments.items() if r["status"] == "succeeded" and by_ref[p] != 1]
            + [p for p, n in by_ref.items() if n > 1],
        )
    )
    checks.append(
        Check(
            "no payment left unsettled",
            len(payments),
            [p for p, r in payments.items() if r["status"] in UNSETTLED],
        )
    )
    succeeded = {p for p, r in payments.items() if r["status"] == "succeeded"}
    checks.append(
        Check(
            "payment.succeeded confirmed exactly once (send_confirmation)",
            len(succeeded),
            [p for p in succeeded if confirmations[p] != 1]
            + [p for p in confirmations if p not in succeeded],
        )
    )
    received = set(receiver.payments.values())
    checks.append(
        Check(
            "payment.succeeded reached the merchant's endpoint",
            len(succeeded),
            sorted(succeeded - received),
        )
    )
    checks.append(Check("dead letters", dead, [f"{dead} dead"] if dead else []))
    return checks


def print_checks(checks: list[Check], extra: dict[str, Any]) -> None:
    table = Table(title="scale-out audit")
    table.add_column("check")
    table.add_column("checked", justify="right")
    table.add_column("breaches", justify="right")
    table.add_column("examples")
    for c in checks:
        table.add_row(
            c.name, str(c.checked), str(len(c.breaches)), ", ".join(map(str, c.breaches[:3]))
        )
    console.print(table)
    for key, value in extra.items():
        console.print(f"{key}: {value}")


def answered(sent: Sent) -> int:
    """Payments the API answered with an outcome: created (201), replayed (200), declined (402)."""
    return sum(1 for a in sent.answers.values() for status, _ in a if status in (200, 201, 402))


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


async def add_receiver_rule(url: str, auth: str, hook: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{url}/v1/rules/scaleout-receiver",
            headers={"Authorization": f"Bearer {auth}"},
            json={
                "event_pattern": {"detail-type": ["payment.succeeded"]},
                "targets": [{"id": "hook", "type": "http", "url": hook}],
            },
        ) as r,
    ):
        if r.status != 200:
            raise RuntimeError(f"rule refused: {r.status} {await r.text()}")


async def run_audit(args: argparse.Namespace) -> int:
    receiver = Receiver()
    runner, hook = await start_receiver(receiver)
    env = {"PAYMESH_NATS_ACK_WAIT": str(args.ack_wait)}
    cluster = Cluster(apis=args.apis, workers=args.workers, env=env)
    try:
        await asyncio.to_thread(cluster.start)
        console.print(
            f"cluster up: {args.apis} API processes, {args.workers} workers, "
            f"PostgreSQL + NATS JetStream; sending {args.payments} payments at "
            f"{args.rate}/s, {args.duplicates:.0%} twice"
        )
        await add_receiver_rule(cluster.api_urls[0], cluster.api_key, hook)
        await asyncio.sleep(3)  # the workers' rule watchers pick the new rule up
        killed: list[float] = []

        def kill() -> None:
            if args.kill_worker and cluster.worker_procs:
                cluster.kill_worker(0)
                killed.append(time.monotonic())
                console.print("SIGKILLed worker0 mid-run")

        started = time.monotonic()
        sent = await drive_load(
            cluster.api_urls,
            cluster.api_key,
            args.payments,
            args.rate,
            args.duplicates,
            args.seed,
            on_half=kill,
        )
        load_s = time.monotonic() - started
        left = await settle(cluster, receiver, args.settle_timeout)
        settle_s = time.monotonic() - started - load_s
        checks = await audit(cluster, sent, receiver)
        twice = sum(1 for n in receiver.seen.values() if n > 1)
        extra = {
            "payments sent (keys)": len(sent.answers),
            "requests answered": sum(len(a) for a in sent.answers.values()),
            "answers by status": dict(Counter(s for a in sent.answers.values() for s, _ in a)),
            "client errors": dict(sent.errors),
            "load seconds": round(load_s, 1),
            "settled after (s)": round(settle_s, 1),
            "left when settling stopped": left,
            "API latency p50/p99 ms": (
                round(percentile(sent.latencies, 50) * 1000, 1),
                round(percentile(sent.latencies, 99) * 1000, 1),
            ),
            "events received twice by the endpoint (at-least-once)": twice,
        }
        print_checks(checks, extra)
        if args.json:
            report = json.dumps(
                {"checks": [c.__dict__ for c in checks], **{k: str(v) for k, v in extra.items()}},
                indent=2,
            )
            await asyncio.to_thread(Path(args.json).write_text, report)
        return 1 if any(c.breaches for c in checks) or any(left.values()) else 0
    finally:
        await asyncio.to_thread(cluster.stop)
        await runner.cleanup()


COMPONENTS = ("api", "worker", "sandbox", "postgres", "nats")


def _cpu_seconds(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far of each component's processes (and their children)."""
    spent: dict[str, float] = {}
    for component, pids in cluster.component_pids().items():
        usage = ProcessTree(pids).usage()
        spent[component] = usage[0] if usage is not None else 0.0
    return spent


async def _database_bytes(cluster: Cluster) -> int | None:
    if not cluster.dsn:
        return None
    conn = await asyncpg.connect(cluster.dsn)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


async def warm_up(cluster: Cluster, rate: float, seconds: float, seed: int) -> float | None:
    """`seconds` of load at `rate` before anything is measured; the p99 of its answers, ms.

    A process just started answers its first requests slowly. A CPU profile of the API's
    first 100 payments against 100 later ones found 27 % more CPU, spread thin: statements
    prepared on each pooled connection for the first time, Python's first pass through each
    code path. At 100/s on 1 API + 1 worker, which then use most of the 2 cores, the first
    ~0.5 s of answers took 100-250 ms (they queue behind one another), then none took over
    50 ms: a 10 s run's p99 was that start.
    Measured apart, a row says what a running deployment answers, and this figure what one
    just (re)started does."""
    if seconds <= 0:
        return None
    sent = await drive_load(
        cluster.api_urls, cluster.api_key, int(rate * seconds), rate, 0.0, seed * 1000 + 999
    )
    await asyncio.sleep(3)  # its bus work done before the measured run's CPU is read
    return round(percentile(sent.latencies, 99) * 1000, 1)


async def bench_config(
    label: str,
    cluster: Cluster,
    rates: list[float],
    duration: float,
    seed: int,
    warmup: float = 0.0,
) -> list[dict[str, Any]]:
    """One row per offered rate: achieved payments/s, API latency, and each component's CPU
    milliseconds per payment over the rate's run and the drain after it (its bus work). With
    `warmup`, that many seconds at the first rate go first, unmeasured but for their p99
    (the first row's "cold p99 ms")."""
    rows = []
    try:
        await asyncio.to_thread(cluster.start)
        await asyncio.sleep(2)
        cold_p99 = await warm_up(cluster, rates[0], warmup, seed) if rates else None
        for n, rate in enumerate(rates):
            count = int(rate * duration)
            before = _cpu_seconds(cluster)
            size_before = await _database_bytes(cluster)
            started = time.monotonic()
            sent = await drive_load(
                cluster.api_urls, cluster.api_key, count, rate, 0.0, seed * 1000 + n
            )
            elapsed = time.monotonic() - started
            await asyncio.sleep(3)  # let the bus drain: its work is the payments' too
            after = _cpu_seconds(cluster)
            size_after = await _database_bytes(cluster)
            ok = answered(sent)
            cpu = {
                f"{c} ms": round(1000 * (after.get(c, 0.0) - before.get(c, 0.0)) / max(ok, 1), 2)
                for c in COMPONENTS
                if c in after
            }
            rows.append(
                {
                    "mode": label,
                    "offered/s": rate,
                    "achieved/s": round(ok / elapsed, 1),
                    "p50 ms": round(percentile(sent.latencies, 50) * 1000, 1),
                    "p99 ms": round(percentile(sent.latencies, 99) * 1000, 1),
                    "cold p99 ms": cold_p99 if n == 0 else None,
                    "errors": sum(sent.errors.values()) + count - ok,
                    **cpu,
                    "DB bytes/payment": (
                        round((size_after - size_before) / max(ok, 1))
                        if size_after is not None and size_before is not None
                        else None
                    ),
                }
            )
            console.print(rows[-1])
    finally:
        await asyncio.to_thread(cluster.stop)
    return rows


def paper_model(rows: list[dict[str, Any]], targets: tuple[int, ...] = (1_500, 15_000)) -> Table:
    """Cores and database growth for `targets` payments/s, from the measured per-payment costs
    of each PostgreSQL + NATS configuration at its highest rate served in full (achieved at
    least 95% of offered): cost times rate, nothing for coordination that more processes add."""
    table = Table(title="paper model: what the per-payment costs above imply")
    names = {"api": "API", "worker": "worker", "sandbox": "sandbox", "postgres": "PostgreSQL"}
    columns = ["from", "payments/s", *(f"{names.get(c, c.upper())} cores" for c in COMPONENTS)]
    for column in [*columns, "all cores", "DB growth/day"]:
        table.add_column(column, justify="left" if column == "from" else "right")
    measured: dict[str, dict[str, Any]] = {}
    for r in rows:
        if "postgres ms" in r and r["achieved/s"] >= 0.95 * r["offered/s"]:
            measured[r["mode"]] = r  # rates go up: the last one served in full wins
    for mode, r in measured.items():
        for target in targets:
            cores = {c: r.get(f"{c} ms", 0.0) * target / 1000 for c in COMPONENTS}
            per_day = (r.get("DB bytes/payment") or 0) * target * 86_400 / 1e12
            table.add_row(
                f"{mode} at {r['offered/s']:g}/s",
                f"{target:,}",
                *(f"{cores[c]:.1f}" for c in COMPONENTS),
                f"{sum(cores.values()):.1f}",
                f"{per_day:.2f} TB",
            )
    return table


async def run_bench(args: argparse.Namespace) -> int:
    rates = [float(r) for r in args.rates.split(",")]
    configs: list[tuple[str, Cluster]] = [
        ("embedded (SQLite)", Cluster(apis=1, workers=0, embedded=True))
    ]
    if args.pairs:  # issue 18's table: N API processes and N workers
        shapes = [(n, n) for n in map(int, args.pairs.split(","))]
    else:
        shapes = [(n, args.workers) for n in map(int, args.apis.split(","))]
    configs += [
        (f"{n} API + {w} worker{'s' if w != 1 else ''} (PG+NATS)", Cluster(apis=n, workers=w))
        for n, w in shapes
    ]
    rows: list[dict[str, Any]] = []
    for label, cluster in configs:
        console.print(f"[bold]{label}[/bold]")
        rows += await bench_config(label, cluster, rates, args.duration, args.seed, args.warmup)
    table = Table(
        title=f"payments/s, API latency and CPU ms per payment by component, {args.duration:g} s "
        "per rate; the PSP sandboxes in their own process; 2 cores shared by everything"
    )
    columns = list(dict.fromkeys(k for r in rows for k in r))
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right")
    baseline = {r["offered/s"]: r["achieved/s"] for r in rows if r["mode"].startswith("emb")}
    table.add_column("vs embedded", justify="right")
    for r in rows:
        base = baseline.get(r["offered/s"]) or 1.0
        cells = ("" if r.get(c) is None else str(r[c]) for c in columns)
        table.add_row(*cells, f"{r['achieved/s'] / base:.2f}")
    console.print(table)
    console.print(paper_model(rows))
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(rows, indent=2))
    return 0


async def run_statements(args: argparse.Namespace) -> int:
    """Statements per payment, counted in PostgreSQL's log: a figure that does not depend on
    how busy the machine is, unlike the CPU the bench reads."""
    cluster = Cluster(apis=args.apis, workers=args.workers)
    try:
        await asyncio.to_thread(cluster.start)
        assert cluster.dsn is not None and cluster.postgres is not None
        await drive_load(cluster.api_urls, cluster.api_key, 50, args.rate, 0.0, args.seed + 1)
        await asyncio.sleep(3)  # the warm-up's bus work, outside the count
        admin = await asyncpg.connect(cluster.dsn)
        try:
            await admin.execute("ALTER SYSTEM SET log_statement = 'all'")
            await admin.execute("SELECT pg_reload_conf()")
            await asyncio.sleep(1)
            log = cluster.postgres.log_file
            start = log.stat().st_size
            sent = await drive_load(
                cluster.api_urls, cluster.api_key, args.payments, args.rate, 0.0, args.seed
            )
            await asyncio.sleep(5)  # the payments' events routed and delivered
            await admin.execute("ALTER SYSTEM SET log_statement = 'none'")
            await admin.execute("SELECT pg_reload_conf()")
        finally:
            await admin.close()
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    finally:
        await asyncio.to_thread(cluster.stop)
    ok = answered(sent)
    statements = re.findall(r"LOG:  (?:execute [^:]*|statement): (\S+)", text)
    kinds = Counter(s.rstrip(";").upper() for s in statements)
    kinds.pop("ALTER", None)  # the switch itself
    table = Table(title=f"PostgreSQL statements per payment ({ok} payments at {args.rate:g}/s)")
    table.add_column("statement")
    table.add_column("per payment", justify="right")
    for kind, n in kinds.most_common():
        table.add_row(kind, f"{n / max(ok, 1):.2f}")
    table.add_row("all", f"{sum(kinds.values()) / max(ok, 1):.2f}")
    console.print(table)
    if args.texts:
        # The statement's first line, its literals as PostgreSQL logged them: which ones a
        # payment sends most, to know where a round trip could be saved.
        texts = Counter(
            " ".join(t.split())[:120]
            for t in re.findall(r"LOG:  (?:execute [^:]*|statement): (.*)", text)
            if not t.upper().startswith("ALTER")
        )
        listed = Table(title=f"the {args.texts} most sent, per payment")
        listed.add_column("statement (first line)")
        listed.add_column("per payment", justify="right")
        for t, n in texts.most_common(args.texts):
            listed.add_row(t, f"{n / max(ok, 1):.2f}")
        console.print(listed)
    return 0 if ok == args.payments else 1


def _cluster_load_args(
    parser: argparse.ArgumentParser, payments: int, rate: float, apis: int
) -> None:
    """What `audit` and `statements` both take: how many payments, how fast, on how many
    API and worker processes, from which seed."""
    parser.add_argument("--payments", type=int, default=payments)
    parser.add_argument("--rate", type=float, default=rate)
    parser.add_argument("--apis", type=int, default=apis)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="payments, twins, a killed worker; then the audit")
    _cluster_load_args(a, payments=5000, rate=100.0, apis=2)
    a.add_argument("--duplicates", type=float, default=0.1)
    a.add_argument("--no-kill", dest="kill_worker", action="store_false")
    a.add_argument(
        "--ack-wait",
        type=float,
        default=10.0,
        help="seconds before a dead worker's deliveries go to another",
    )
    a.add_argument("--settle-timeout", type=float, default=180.0)
    a.add_argument("--json")
    b = sub.add_parser("bench", help="payments/s and p99: embedded vs 1, 2, 4 API processes")
    b.add_argument("--apis", default="1,2,4")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument(
        "--pairs", help="N API processes with N workers each row (1,2,4), instead of --apis"
    )
    b.add_argument("--rates", default="100,200,300")
    b.add_argument("--duration", type=float, default=10.0)
    b.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of load at the first rate before measuring (0: none); its p99 is shown",
    )
    b.add_argument("--seed", type=int, default=1)
    b.add_argument("--json")
    c = sub.add_parser("statements", help="PostgreSQL statements per payment, by kind")
    _cluster_load_args(c, payments=300, rate=50.0, apis=1)
    c.add_argument("--texts", type=int, default=0, help="also list the N most sent statements")
    args = parser.parse_args()
    if args.command == "audit":
        return asyncio.run(run_audit(args))
    if args.command == "statements":
        return asyncio.run(run_statements(args))
    return asyncio.run(run_bench(args))


if __name__ == "__main__":
    sys.exit(main())
