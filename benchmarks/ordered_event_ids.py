"""What a payment's writes cost in a large SQLite database: random event ids against ids in
time order (version 7 UUIDs).

    python benchmarks/ordered_event_ids.py --prefill 400000 --payments 20000   # ~4 min

An event's id is a key in three B-tree indexes of the embedded store: `events.id` (unique),
`deliveries_once` (event id, rule, target: seven deliveries a payment) and the ledger's
transaction id (`txn_<event id>`). A random id lands on a random leaf of each; once an index
is larger than SQLite's page cache, each insert reads its page in, and each commit writes
every page it dirtied to the WAL (and a checkpoint again to the database). Ids that grow with
time all land on the last leaves, which stay cached and are written once for many rows.

For each kind of id (`random`: version 4, as before; `ordered`: version 7) the script makes
a database with paymesh's own schema (`adapters/sqlite/schema.py`: its tables, indexes and
pragmas), fills it with `--prefill` payments' rows in large transactions (two events, seven
deliveries, one ledger transaction with three postings a payment, shaped like a soak's), then
times `--payments` more as the store commits them: a commit for a payment's creation (its
events, deliveries, ledger rows) and one for its deliveries done (events and deliveries
marked delivered). Printed for each: the process's CPU (user + system) and the bytes it
wrote (`/proc/self/io`), a payment; then ordered's ratio to random, measured in the same run.
Only the store's writes: no HTTP, no bus; the server's CPU for a payment is larger.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from paymesh.adapters.sqlite.schema import connect, migrate  # noqa: E402
from paymesh.entropy import uuid4, uuid7  # noqa: E402

RULES = (  # (rule, target) of the default rules a succeeded payment's events reach
    ("fraud-stream", "fraud"),
    ("fraud-stream", "analytics"),
    ("payment-succeeded", "inventory"),
    ("payment-succeeded", "confirmation"),
    ("payment-succeeded", "ledger"),
    ("all-events", "audit"),
    ("all-events", "metrics"),
)
ENVELOPE = b"x" * 640  # an event's envelope, about a soak's
DELIVERY_DOC = b"y" * 270  # a delivery's document: its target, times, history
LEDGER_DOC = b"z" * 200
ULID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(prefix: str, now_us: int, n: int) -> str:
    """A time-ordered id like paymesh's own (`pay_`, `dlv_`): these never were random."""
    value, text = (now_us << 20) | (n & 0xFFFFF), []
    for _ in range(16):
        value, digit = divmod(value, 32)
        text.append(ULID_CHARS[digit])
    return prefix + "".join(reversed(text))


def payment_rows(
    n: int, now_us: int, event_id: Callable[[], str]
) -> tuple[list[tuple[object, ...]], ...]:
    pay = ulid("pay_", now_us, n)
    events = [event_id(), event_id()]
    event_rows = [
        (e, "bench", pay, kind, now_us, ENVELOPE)
        for e, kind in zip(events, ("payment.initiated", "payment.succeeded"), strict=True)
    ]
    delivery_rows = [
        (
            ulid("dlv_", now_us, n * 8 + i),
            events[i % 2],
            "bench",
            rule,
            target,
            now_us,
            DELIVERY_DOC,
        )
        for i, (rule, target) in enumerate(RULES)
    ]
    txn = f"txn_{events[1]}"
    ledger_rows = [(txn, "bench", pay, "stripe", "charge", now_us, LEDGER_DOC)]
    postings = [
        (txn, "bench", account, "usd", amount, "2026-12-08")
        for account, amount in (("psp_receivable", 1923), ("fees", 56), ("merchant", -1979))
    ]
    return event_rows, delivery_rows, ledger_rows, postings


INSERTS = (
    "INSERT INTO events (id, merchant_id, payment_id, type, time_us, envelope)"
    " VALUES (?, ?, ?, ?, ?, ?)",
    "INSERT INTO deliveries (id, event_id, merchant_id, rule, target_id, status, attempts,"
    " next_attempt_us, updated_us, doc) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
    "INSERT INTO ledger_transactions (id, merchant_id, payment_id, psp, kind, created_us, doc)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "INSERT INTO ledger_postings (txn_id, merchant_id, account, currency, amount, available_on)"
    " VALUES (?, ?, ?, ?, ?, ?)",
)


def write(conn: sqlite3.Connection, rows: tuple[list[tuple[object, ...]], ...]) -> None:
    """A payment's creation: its events, deliveries and ledger rows."""
    events, deliveries, ledger, postings = rows
    deliveries = [(*d[:6], d[5], d[6]) for d in deliveries]  # next attempt and updated: now
    for sql, batch in zip(INSERTS, (events, deliveries, ledger, postings), strict=True):
        conn.executemany(sql, batch)


def deliver(
    conn: sqlite3.Connection, rows: tuple[list[tuple[object, ...]], ...], now_us: int
) -> None:
    """Its deliveries done: each marked delivered, and its events."""
    events, deliveries, _, _ = rows
    conn.executemany(
        "UPDATE deliveries SET status = 'delivered', attempts = 1, updated_us = ? WHERE id = ?",
        [(now_us, d[0]) for d in deliveries],
    )
    conn.executemany("UPDATE events SET delivered = 1 WHERE id = ?", [(e[0],) for e in events])


def written_bytes() -> int:
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/self/io")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def clock_us() -> Iterator[int]:
    now = time.time_ns() // 1000
    while True:
        now += 5_000  # 200 payments a second of simulated time
        yield now


def run(
    kind: str, prefill: int, payments: int, workdir: Path, cache_mib: int | None
) -> dict[str, float]:
    event_id = uuid4 if kind == "random" else uuid7  # made as a server makes them
    path = workdir / f"{kind}.db"
    conn = connect(str(path))
    if cache_mib is not None:
        conn.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
    migrate(conn)
    started = time.perf_counter()
    clock = clock_us()
    n = 0
    batch = 10_000
    while n < prefill:
        conn.execute("BEGIN IMMEDIATE")
        for _ in range(min(batch, prefill - n)):
            now = next(clock)
            rows = payment_rows(n, now, event_id)
            write(conn, rows)
            deliver(conn, rows, now)
            n += 1
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filled = time.perf_counter() - started
    size = path.stat().st_size
    cpu0, io0, t0 = cpu_s(), written_bytes(), time.perf_counter()
    for _ in range(payments):
        now = next(clock)
        rows = payment_rows(n, now, event_id)
        conn.execute("BEGIN IMMEDIATE")
        write(conn, rows)
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        deliver(conn, rows, now)
        conn.execute("COMMIT")
        n += 1
    cpu, io, wall = cpu_s() - cpu0, written_bytes() - io0, time.perf_counter() - t0
    conn.close()
    return {
        "prefill_s": round(filled, 1),
        "db_mib_at_start": round(size / 2**20, 1),
        "cpu_us_per_payment": round(cpu / payments * 1e6, 1),
        "written_kib_per_payment": round(io / payments / 1024, 1),
        "wall_us_per_payment": round(wall / payments * 1e6, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prefill", type=int, default=400_000, help="payments before timing")
    parser.add_argument("--payments", type=int, default=20_000, help="payments timed")
    parser.add_argument(
        "--cache-mib", type=int, help="SQLite's page cache (default: SQLite's, 2 MiB)"
    )
    parser.add_argument("--dir", type=Path, help="where the databases go (default: a temp dir)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="paymesh-ids-", dir=args.dir))
    results: dict[str, dict[str, float]] = {}
    try:
        for kind in ("random", "ordered"):
            results[kind] = run(kind, args.prefill, args.payments, workdir, args.cache_mib)
            print(kind, json.dumps(results[kind]), flush=True)
            for leftover in workdir.glob(f"{kind}.db*"):
                leftover.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    random_, ordered = results["random"], results["ordered"]
    print(
        f"{args.prefill:,} payments in the database, {args.payments:,} timed: ordered / random"
        f" CPU {ordered['cpu_us_per_payment'] / random_['cpu_us_per_payment']:.2f}, bytes"
        f" written {ordered['written_kib_per_payment'] / random_['written_kib_per_payment']:.2f},"
        f" wall {ordered['wall_us_per_payment'] / random_['wall_us_per_payment']:.2f}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"settings": vars(args) | {"json": None, "dir": None}, "results": results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
