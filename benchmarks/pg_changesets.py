"""A payment's writes through the real PostgreSQL store: CPU in the client and in PostgreSQL,
and statements, against a baseline source tree in the same run.

Each payment is the three changesets the scale-out mode commits for it: the create (the
idempotency claim, the payment, `payment.initiated`), the PSP's answer (the payment
succeeded, its events and ledger booking, the idempotency key completed) and the
confirmation (the consumer's mark and the notification). `--concurrency` payments are in
flight at once on one pool, as requests are in an API process.

    python benchmarks/pg_changesets.py --payments 2000 --baseline-src /tmp/base/src

Each round runs in a child process of its own, importing `paymesh` from this tree, or with
`--baseline-src` alternately from that one (a worktree of an older commit), each on a
database of its own on one PostgreSQL server; the table then shows the ratio. Client CPU
is this process's; PostgreSQL's is every `postgres` process's, read from /proc (so nothing
else should use PostgreSQL on the machine meanwhile). Statements are counted from
PostgreSQL's statement log over one round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
from rich.console import Console
from rich.table import Table

from tests.support.postgres import running_postgres

console = Console()
THIS_SRC = str(Path(__file__).resolve().parent.parent / "src")


def _postgres_cpu_seconds() -> float:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if comm.startswith("postgres"):
            fields = stat.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def _round(
    dsn: str, payments: int, concurrency: int, tag: str, log: tuple[str, Path] | None = None
) -> dict[str, float]:
    """One round of `payments` payments, after a few uncounted ones (the pool's connections
    open and prepare their statements); CPU per payment in ms (client, PostgreSQL). With
    `log` (the server's admin DSN and log file), the statements PostgreSQL logged per
    payment instead (its logging costs CPU: such a round is not timed)."""
    # Imported here: the child process's `paymesh` is the baseline tree's.
    from paymesh.adapters.postgres import PostgresStore
    from paymesh.domain.payment import FraudAssessment, Payment, PspOutcome
    from paymesh.domain.status import PaymentStatus
    from paymesh.ports.store import Changeset, IdempotencyRecord, IdempotencyWrite, Notification

    store = PostgresStore(dsn, min_size=concurrency, max_size=concurrency)
    await store.open()
    allow = FraudAssessment(score=3, factors=("new_customer",), decision="allow")

    async def one(i: int) -> None:
        now = datetime.now(UTC)
        pid = f"pay_{tag}_{i}"
        p = Payment.initiate(
            now=now,
            fraud=allow,
            id=pid,
            merchant_id="m1",
            amount=2000 + i % 500,
            currency="usd",
            customer_id=f"cus_{i}",
            payment_method="pm_card_visa",
            capture_method="automatic",
            connector="stripe",
            metadata={"order": str(i)},
            receipt_email="buyer@example.com",
        )
        record = IdempotencyRecord(
            merchant_id="m1",
            key=f"key_{tag}_{i}",
            fingerprint="fp",
            resource_id=pid,
            lease_token="tok",
            locked_until=now + timedelta(seconds=30),
            expires_at=now + timedelta(days=1),
        )
        create = Changeset(idempotency=IdempotencyWrite(record, now))
        create.save(p)
        await store.commit(create)
        create.committed()
        p.apply_psp_outcome(
            PspOutcome(PaymentStatus.SUCCEEDED, f"pi_{tag}_{i}", amount_received=p.amount), now
        )
        done = replace(
            record, completed=True, response_status=201, response_body=b'{"status":"ok"}'
        )
        answer = Changeset(idempotency=IdempotencyWrite(done, now, expected_token="tok"))
        answer.save(p)
        succeeded = [e for e in answer.events if e.type == "payment.succeeded"]
        await store.commit(answer)
        answer.committed()
        event_id = succeeded[0].id if succeeded else f"evt_{tag}_{i}"
        await store.commit(
            Changeset(
                processed=[("send_confirmation:email", event_id)],
                notifications=[
                    Notification(
                        id=f"ntf_{tag}_{i}",
                        merchant_id="m1",
                        payment_id=pid,
                        event_id=event_id,
                        channel="email",
                        recipient="buyer@example.com",
                        template="payment_succeeded",
                        created_at=now,
                    )
                ],
            )
        )

    gate = asyncio.Semaphore(concurrency)

    async def gated(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(gated(-1 - i) for i in range(concurrency * 4)))
    start = 0
    if log is not None:
        await _log_statements(log[0], True)
        start = log[1].stat().st_size
    cpu, pg = time.process_time(), _postgres_cpu_seconds()
    await asyncio.gather(*(gated(i) for i in range(payments)))
    result = {
        "client_ms": (time.process_time() - cpu) / payments * 1e3,
        "postgres_ms": (_postgres_cpu_seconds() - pg) / payments * 1e3,
    }
    if log is not None:
        await _log_statements(log[0], False)
        result = {"statements": _logged_statements(log[1], start) / payments}
    await store.close()
    return result


def _logged_statements(log_file: Path, start: int) -> int:
    with log_file.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    sent = re.findall(r"LOG:  (?:execute [^:]*|statement): (.*)", text)
    return sum(1 for s in sent if not s.upper().startswith(("ALTER SYSTEM", "SELECT PG_RELOAD")))


async def _log_statements(admin_dsn: str, on: bool) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"ALTER SYSTEM SET log_statement = '{'all' if on else 'none'}'")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()
    await asyncio.sleep(0.5)


async def _child(args: argparse.Namespace) -> None:
    """`--child`: one round on `--dsn`, printed as JSON (the parent's baseline rounds)."""
    log = None if args.log_file is None else (args.admin_dsn, Path(args.log_file))
    print(json.dumps(await _round(args.dsn, args.payments, args.concurrency, args.tag, log)))


def _child_round(
    args: argparse.Namespace, src: str, dsn: str, tag: str, log: tuple[str, Path] | None = None
) -> dict[str, float]:
    """A round in a process of its own whose `paymesh` is imported from `src`: both trees
    are measured so, each starting as cold as the other."""
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{Path.cwd()}"}
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            "--dsn",
            dsn,
            "--tag",
            tag,
            "--payments",
            str(args.payments),
            "--concurrency",
            str(args.concurrency),
            *([] if log is None else ["--admin-dsn", log[0], "--log-file", str(log[1])]),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=200, help="payments of the counted round")
    parser.add_argument("--baseline-src", help="a tree whose src/ holds the baseline paymesh")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="r", help=argparse.SUPPRESS)
    parser.add_argument("--admin-dsn", help=argparse.SUPPRESS)
    parser.add_argument("--log-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        await _child(args)
        return 0
    trees = ["this tree", "baseline"] if args.baseline_src else ["this tree"]
    rounds: dict[str, list[dict[str, float]]] = {tree: [] for tree in trees}
    statements: dict[str, float] = {}
    with running_postgres() as server:
        n = 0

        async def measure(
            tree: str, payments: int, log: tuple[str, Path] | None
        ) -> dict[str, float]:
            nonlocal n
            n += 1
            dsn = await server.create_database(f"changesets_{n}")
            src = args.baseline_src if tree == "baseline" else THIS_SRC
            run = argparse.Namespace(**{**vars(args), "payments": payments})
            return await asyncio.to_thread(_child_round, run, src, dsn, f"{tree[0]}{n}", log)

        for r in range(1, args.rounds + 1):  # alternating: the machine's drift hits both
            for tree in trees:
                got = await measure(tree, args.payments, None)
                rounds[tree].append(got)
                console.print(
                    f"round {r} {tree}: client {got['client_ms']:.3f} ms, "
                    f"PostgreSQL {got['postgres_ms']:.3f} ms a payment"
                )
        for tree in trees:  # with every statement logged: not timed
            got = await measure(tree, args.count, (server.dsn(), server.log_file))
            statements[tree] = got["statements"]
    table = Table(title=f"a payment's three changesets, {args.payments} a round, CPU ms (median)")
    for column in ("tree", "client", "PostgreSQL", "statements"):
        table.add_column(column, justify="left" if column == "tree" else "right")
    medians = {
        tree: (
            _median([g["client_ms"] for g in got]),
            _median([g["postgres_ms"] for g in got]),
            statements[tree],
        )
        for tree, got in rounds.items()
    }
    for tree, (client, pg, sent) in medians.items():
        table.add_row(tree, f"{client:.3f}", f"{pg:.3f}", f"{sent:.2f}")
    if "baseline" in medians:
        this, base = medians["this tree"], medians["baseline"]
        table.add_row("ratio", *(f"{a / b:.2f}" for a, b in zip(this, base, strict=True)))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
