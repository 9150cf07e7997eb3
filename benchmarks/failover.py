"""A PSP outage on a scale-out cluster: what per-process circuit breakers cost, measured.

    python benchmarks/failover.py --apis 1,2,4 --rate 50 --duration 30 --outage-at 8 --outage-for 12

Each API process keeps its own circuit breaker per PSP (`paymesh.service.circuit`). This
script checks what that costs when a PSP fails: on a cluster of N API processes (PostgreSQL +
NATS, the sandboxes in their own process), it sends payments round robin at a fixed rate,
makes Stripe (first on every route) fail every request for `--outage-for` seconds, then
heals it. It does this once per kind of failure:

- `429`: Stripe refuses every request without acting on it (`rate_limit_rate` 1.0). The
  same as a refused connection to paymesh: provably nothing was done, so a payment fails
  over to the next PSP at once.
- `500`: Stripe answers every request with a server error (`error_rate` 1.0). Ambiguous:
  the request may have been processed, so the payment stays with Stripe and recovery asks
  Stripe again, with the same key, once it is back.

It reads each API process's `/metrics` (calls to Stripe and their errors) before, during and
after the outage, and PostgreSQL for where each payment ended. It prints, per cluster size
and kind: the calls that reached the failing Stripe, the payments caught by it (sent to Stripe
while it failed), the payments that went elsewhere, answers and latency in and out of the
outage, and how long after the heal Stripe took payments again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.cluster import Cluster  # noqa: E402
from benchmarks.scaleout import UNSETTLED, percentile  # noqa: E402

console = Console(width=200)
FAULTS = {"429": {"rate_limit_rate": 1.0}, "500": {"error_rate": 1.0}}
HEALED = {"rate_limit_rate": 0.0, "error_rate": 0.0}


@dataclass
class Answer:
    at: float  # when it was due, seconds from the start of the load
    status: int
    payment_id: str | None
    connector: str | None
    latency: float  # from when it was due to its answer, s


async def send(
    session: aiohttp.ClientSession, url: str, auth: str, key: str, due: float, start: float
) -> Answer:
    payload = {"amount": 1500, "currency": "usd", "payment_method": "pm_card_visa"}
    try:
        async with session.post(
            f"{url}/v1/payments",
            json={**payload, "customer_id": f"cus_{key}"},
            headers={"Authorization": f"Bearer {auth}", "Idempotency-Key": key},
        ) as r:
            body = await r.json()
            return Answer(
                due - start, r.status, body.get("id"), body.get("connector"), time.monotonic() - due
            )
    except (aiohttp.ClientError, TimeoutError):
        return Answer(due - start, 0, None, None, time.monotonic() - due)


async def stripe_calls(cluster: Cluster) -> tuple[float, float]:
    """Calls to Stripe and calls that failed, summed over the API processes' /metrics."""
    token = cluster.env["PAYMESH_METRICS_TOKEN"]
    calls = errors = 0.0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        for url in cluster.api_urls:
            async with session.get(f"{url}/metrics") as r:
                text = await r.text()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.labels.get("psp") != "stripe" or not sample.name.endswith("_total"):
                        continue
                    if sample.name == "paymesh_psp_calls_total":
                        calls += sample.value
                    elif sample.name == "paymesh_psp_call_errors_total":
                        errors += sample.value
    return calls, errors


async def configure_stripe(cluster: Cluster, faults: dict[str, float]) -> None:
    url = f"{cluster.sandbox_url}/stripe/_config"
    async with aiohttp.ClientSession() as session, session.put(url, json=faults) as r:
        if r.status != 200:
            raise RuntimeError(f"sandbox _config: {r.status} {await r.text()}")


async def final_state(cluster: Cluster, within: float) -> dict[str, tuple[str, str, float]]:
    """Each payment's (status, connector, seconds from its creation to its last change) once
    none is left unsettled, or at `within` s."""
    deadline = time.monotonic() + within
    while True:
        conn = await asyncpg.connect(cluster.dsn)
        try:
            rows = await conn.fetch(
                "SELECT id, status, connector,"
                " extract(epoch FROM updated_at - created_at)::float8 AS took FROM payments"
            )
        finally:
            await conn.close()
        state = {row["id"]: (row["status"], row["connector"], row["took"]) for row in rows}
        if time.monotonic() > deadline or not any(s in UNSETTLED for s, _, _ in state.values()):
            return state
        await asyncio.sleep(1.0)


async def one_outage(apis: int, kind: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    cluster = Cluster(apis=apis, workers=args.workers)
    try:
        await asyncio.to_thread(cluster.start)
        await asyncio.sleep(2)
        count = int(args.rate * args.duration)
        outage_start, outage_end = args.outage_at, args.outage_at + args.outage_for
        marks: dict[str, tuple[float, float]] = {}
        tasks: list[asyncio.Task[Answer]] = []
        rng = random.Random(seed)
        connector = aiohttp.TCPConnector(limit=512)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            start = time.monotonic()
            phase = 0
            for i in range(count):
                due = start + i / args.rate
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                offset = due - start
                if phase == 0 and offset >= outage_start:
                    marks["before"] = await stripe_calls(cluster)
                    await configure_stripe(cluster, FAULTS[kind])
                    phase = 1
                elif phase == 1 and offset >= outage_end:
                    await configure_stripe(cluster, HEALED)
                    marks["during"] = await stripe_calls(cluster)
                    phase = 2
                key = f"fo-{kind}-{apis}-{seed}-{i}-{rng.randrange(1 << 30)}"
                url = cluster.api_urls[i % apis]
                tasks.append(
                    asyncio.create_task(send(session, url, cluster.api_key, key, due, start))
                )
            answers = await asyncio.gather(*tasks)
        state = await final_state(cluster, args.settle_timeout)
        marks["after"] = await stripe_calls(cluster)
    finally:
        await asyncio.to_thread(cluster.stop)
    return summarise(apis, kind, answers, state, marks, outage_start, outage_end)


def summarise(
    apis: int,
    kind: str,
    answers: list[Answer],
    state: dict[str, tuple[str, str, float]],
    marks: dict[str, tuple[float, float]],
    outage_start: float,
    outage_end: float,
) -> dict[str, Any]:
    during = [a for a in answers if outage_start <= a.at < outage_end]
    outside = [a for a in answers if a.at < outage_start]
    # Caught: sent while Stripe failed and still Stripe's when all was settled (left for
    # recovery); went elsewhere: answered by another PSP.
    caught = [state[a.payment_id] for a in during if a.payment_id in state]
    caught = [payment for payment in caught if payment[1] == "stripe"]
    elsewhere = [a for a in during if a.connector not in (None, "stripe")]
    healed_stripe = sorted(
        a.at for a in answers if a.at >= outage_end and a.connector == "stripe" and a.status == 201
    )
    end_status = Counter(state.get(a.payment_id or "", ("missing", "", 0.0))[0] for a in answers)
    return {
        "apis": apis,
        "fault": kind,
        "payments": len(answers),
        "in outage": len(during),
        "stripe calls in outage": round(marks["during"][0] - marks["before"][0]),
        "of them failed": round(marks["during"][1] - marks["before"][1]),
        "caught by stripe": len(caught),
        "went elsewhere": len(elsewhere),
        # How long the caught ones took to succeed: recovery asking Stripe again.
        "caught settled within s": round(max((took for _, _, took in caught), default=0.0), 1),
        "answers in outage": dict(Counter(a.status for a in during)),
        "p50/p99 before ms": (
            round(percentile([a.latency for a in outside], 50) * 1000, 1),
            round(percentile([a.latency for a in outside], 99) * 1000, 1),
        ),
        "p50/p99 in outage ms": (
            round(percentile([a.latency for a in during], 50) * 1000, 1),
            round(percentile([a.latency for a in during], 99) * 1000, 1),
        ),
        "stripe again after heal s": (
            round(healed_stripe[0] - outage_end, 1) if healed_stripe else None
        ),
        "final status": dict(end_status),
        "stripe calls after": round(marks["after"][0] - marks["during"][0]),
    }


def render(rows: list[dict[str, Any]]) -> None:
    table = Table(title="A Stripe outage, per-process circuit breakers")
    columns = [
        "apis",
        "fault",
        "in outage",
        "stripe calls in outage",
        "of them failed",
        "caught by stripe",
        "went elsewhere",
        "caught settled within s",
        "p50/p99 before ms",
        "p50/p99 in outage ms",
        "stripe again after heal s",
        "final status",
    ]
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for apis in [int(a) for a in args.apis.split(",")]:
        for kind in args.faults.split(","):
            rows.append(await one_outage(apis, kind, args, args.seed))
            console.print(rows[-1])
    render(rows)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apis", default="1,2,4", help="API processes per cluster, in turn")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--faults", default="429,500", help="kinds of outage: 429, 500")
    parser.add_argument("--rate", type=float, default=50.0, help="payments/s")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--outage-at", type=float, default=8.0, help="s into the load")
    parser.add_argument("--outage-for", type=float, default=12.0, help="s")
    parser.add_argument("--settle-timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    if any(kind not in FAULTS for kind in args.faults.split(",")):
        parser.error("--faults: 429 and/or 500")
    rows = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    # A payment the outage left anything but succeeded is a lost sale, or worse.
    unsettled = sum(
        n for row in rows for status, n in row["final status"].items() if status != "succeeded"
    )
    return 1 if unsettled else 0


if __name__ == "__main__":
    sys.exit(main())
