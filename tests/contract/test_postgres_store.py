"""PostgresStore against a real server the run starts itself (tests/support/postgres.py).

The contract suites run unchanged; the tests below them are what only a shared database
needs: several processes (here, several stores with their own pools) at once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from paymesh.adapters.postgres import PostgresStore
from paymesh.adapters.postgres.migrate import MIGRATION_LOCK, SCRIPTS
from paymesh.domain.events import DomainEvent
from paymesh.domain.payment import Payment, PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.bus import Target
from paymesh.ports.store import Changeset, IdempotencyConflict, StoredEvent, VersionConflict
from tests.contract.bus_store_contract import BusStoreContract, delivery
from tests.contract.store_contract import (
    T0,
    SharedOutboxContract,
    StoreContract,
    claim,
    payment,
    save,
)
from tests.support.postgres import PostgresServer, PostgresUnavailable, running_postgres

_names = itertools.count()


@pytest.fixture(scope="session")
def migrated(postgres: PostgresServer) -> str:
    """The DSN of one database at the schema's head, shared by the tests in turn."""

    async def create() -> str:
        store = PostgresStore(await postgres.create_database("paymesh"), min_size=1)
        await store.open()
        await store.close()
        return store.dsn

    return asyncio.run(create())


async def _drop(server: PostgresServer, name: str) -> None:
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database(migrated: str) -> str:
    """The migrated database, emptied: DELETE on a few rows takes well under a millisecond,
    where a fresh copy of a database takes a few hundred."""
    conn = await asyncpg.connect(migrated)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname ="
            " current_schema() AND tablename <> 'alembic_version'"
        )
        async with conn.transaction():
            for (table,) in tables:
                await conn.execute(f'DELETE FROM "{table}"')
    finally:
        await conn.close()
    return migrated


@pytest.fixture
async def store(database: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(database)
    await s.open()
    yield s
    await s.close()


class TestPostgresStore(StoreContract, SharedOutboxContract):
    shared_outbox = True


class TestPostgresBusStore(BusStoreContract):
    pass


async def test_a_connection_goes_back_to_the_pool_without_a_reset_round_trip(
    database: str,
) -> None:
    """asyncpg's default reset is a query on every release; the store's pool sends none, and
    a transaction left open is still rolled back before the connection is reused."""
    store = PostgresStore(database, min_size=1, max_size=1)
    await store.open()
    sent: list[str] = []
    try:
        async with store.pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
            assert await conn.fetchval("SELECT 1") == 1
        assert sent == ["SELECT 1"], "a query went with the release"
        async with store.pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x int) ON COMMIT DROP")
        async with store.pool.acquire() as conn:  # the one connection of the pool, again
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_open')") is None
    finally:
        await store.close()


async def test_a_changeset_is_one_statement_and_a_refused_one_writes_nothing(
    database: str,
) -> None:
    """Every changeset is sent as one statement, its own transaction: no BEGIN and COMMIT
    round trips, no round trip per table. A payment's create (idempotency claim, payment,
    event) is one. Two marks where one was already applied raise AlreadyProcessed and leave
    the other unwritten; a payment written at a stale version raises VersionConflict and
    leaves its event and idempotency record unwritten too."""
    from paymesh.ports.store import (
        AlreadyProcessed,
        IdempotencyRecord,
        IdempotencyWrite,
        PaymentWrite,
    )

    store = PostgresStore(database, min_size=1, max_size=1)
    await store.open()
    sent: list[str] = []
    try:
        async with store.pool.acquire() as conn:  # the pool's one connection, logged
            conn.add_query_logger(lambda record: sent.append(record.query.strip().upper()))
        await store.commit(Changeset(routed=["evt_none"]))
        await store.commit(Changeset(processed=[("ledger", "evt_1")]))
        p = payment("pay_one")
        record = IdempotencyRecord(
            merchant_id=p.merchant_id,
            key="key_1",
            fingerprint="fp",
            resource_id=p.id,
            lease_token="tok",
            locked_until=T0 + timedelta(seconds=30),
            expires_at=T0 + timedelta(days=1),
        )
        assert [q.split()[0] for q in sent] == ["UPDATE", "WITH"], sent
        warm = payment("pay_warm")  # the first use of some types sends asyncpg's lookups
        await store.commit(Changeset(idempotency=IdempotencyWrite(replace(record, key="k0"), T0)))
        await save(store, warm)
        sent.clear()
        created = Changeset(idempotency=IdempotencyWrite(record, T0))
        created.save(p)
        await store.commit(created)
        assert len(sent) == 1 and sent[0].startswith("WITH "), sent
        sent.clear()
        with pytest.raises(AlreadyProcessed):
            await store.commit(Changeset(processed=[("ledger", "evt_1"), ("ledger", "evt_2")]))
        stale = payment("pay_one")  # version 0 again: the row exists
        stale.apply_psp_outcome(
            PspOutcome(PaymentStatus.SUCCEEDED, "pi_1", amount_received=2000), T0
        )
        done = replace(record, completed=True, response_status=201)
        again = Changeset(idempotency=IdempotencyWrite(done, T0, "tok"))
        again.payments.append(PaymentWrite(stale, 5))
        again.events.extend(stale.events)
        with pytest.raises(VersionConflict):
            await store.commit(again)
        assert len(sent) == 2, sent
        async with store.pool.acquire() as conn:
            marks = await conn.fetch("SELECT event_id FROM processed ORDER BY event_id")
            events = await conn.fetch("SELECT type FROM events WHERE payment_id = 'pay_one'")
            held = await conn.fetchval("SELECT completed FROM idempotency WHERE key = 'key_1'")
        assert [m["event_id"] for m in marks] == ["evt_1"]
        assert [e["type"] for e in events] == ["payment.initiated"]  # not the stale write's
        assert held is False  # the refused write did not complete the key
        assert (await store.get_payment("pay_one")).version == 1  # type: ignore[union-attr]
    finally:
        await store.close()


async def _two_stores(dsn: str) -> tuple[PostgresStore, PostgresStore]:
    first, second = PostgresStore(dsn, max_size=10), PostgresStore(dsn, max_size=10)
    await asyncio.gather(first.open(), second.open())
    return first, second


async def test_recovery_finds_refunds_pending_since_before_a_time(store: PostgresStore) -> None:
    # Not in the contract suite yet: Store.payments_with_pending_refunds is new.
    old, fresh, settled = payment("pay_old"), payment("pay_new"), payment("pay_done")
    for p in (old, fresh, settled):
        p.apply_psp_outcome(
            PspOutcome(PaymentStatus.SUCCEEDED, f"pi_{p.id}", amount_received=2000), T0
        )
    old.start_refund("re_old", 500, None, T0)
    fresh.start_refund("re_new", 500, None, T0 + timedelta(hours=1))
    settled.start_refund("re_done", 500, None, T0)
    settled.settle_refund("re_done", True, T0)
    await save(store, old, fresh, settled)
    due = await store.payments_with_pending_refunds(T0 + timedelta(minutes=1), 10)
    assert [p.id for p in due] == ["pay_old"]
    answered = await store.get_payment("pay_old")
    assert answered is not None
    answered.settle_refund("re_old", True, T0 + timedelta(minutes=2))
    await save(store, answered)
    due = await store.payments_with_pending_refunds(T0 + timedelta(hours=2), 10)
    assert [p.id for p in due] == ["pay_new"]


async def test_a_reopened_store_keeps_everything(database: str) -> None:
    first = PostgresStore(database)
    await first.open()
    await save(first, payment("pay_1"))
    await first.close()
    second = PostgresStore(database)
    await second.open()
    stored = await second.get_payment("pay_1")
    assert stored is not None and stored.amount == 2000
    await second.close()


async def test_two_processes_never_claim_the_same_delivery(database: str) -> None:
    a, b = await _two_stores(database)
    try:
        for n in range(30):
            event_id = f"e{n}"
            await a.commit(
                Changeset(
                    events=[DomainEvent("payment.succeeded", "pay_1", "m1", T0, {}, id=event_id)]
                )
            )
            await a.commit(
                Changeset(
                    routed=[event_id],
                    deliveries=[
                        delivery(
                            f"d{n}-{t}",
                            event_id=event_id,
                            target=Target(id=f"t{t}", type="builtin", name="analytics"),
                        )
                        for t in range(10)
                    ],
                )
            )

        async def worker(store: PostgresStore) -> list[str]:
            taken: list[str] = []
            while batch := await store.claim_deliveries(T0, 30, 7):
                taken += [d.id for d in batch]
            return taken

        results = await asyncio.gather(*(worker(s) for s in [a, b] * 8))
        claimed = [d for r in results for d in r]
        assert len(claimed) == 300
        assert len(set(claimed)) == 300
        assert all(results[i] for i in (0, 1)), "both processes took part"
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_fifty_claims_across_two_processes_have_one_winner(database: str) -> None:
    a, b = await _two_stores(database)
    try:
        results = await asyncio.gather(
            *(
                (a if i % 2 else b).commit(Changeset(idempotency=claim(token=f"t{i}")))
                for i in range(50)
            ),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, IdempotencyConflict) for r in results if r is not None)
        winner = next(i for i, r in enumerate(results) if r is None)
        record = await a.get_idempotency("m1", "k1")
        assert record is not None and record.lease_token == f"t{winner}"
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_concurrent_writes_of_one_payment_have_one_winner(database: str) -> None:
    a, b = await _two_stores(database)
    try:
        await save(a, payment("pay_1"))

        # Twenty writers, ten per process, all holding version 1.
        copies: list[tuple[PostgresStore, Payment]] = []
        for s in [a, b] * 10:
            held = await s.get_payment("pay_1")
            assert held is not None
            copies.append((s, held))
        assert all(p.version == 1 for _, p in copies)
        for _, p in copies:
            p.apply_psp_outcome(
                PspOutcome(PaymentStatus.SUCCEEDED, "pi_1", amount_received=2000), T0
            )
        results = await asyncio.gather(*(save(s, p) for s, p in copies), return_exceptions=True)
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, VersionConflict) for r in results if r is not None)
        events = await a.events_for_payment("m1", "pay_1")
        assert [e.type for e in events] == ["payment.initiated", "payment.succeeded"]
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_a_booking_committed_by_two_processes_at_once_is_kept_once(database: str) -> None:
    # A webhook redelivered to two processes at the same moment: both commit the same
    # ledger transactions; one inserts them, the others wait on the unique id, then skip
    # them and their postings.
    captured = payment("pay_1")
    captured.apply_psp_outcome(PspOutcome(PaymentStatus.REQUIRES_CAPTURE, "pi_1"), T0)
    captured.apply_psp_outcome(
        PspOutcome(PaymentStatus.SUCCEEDED, "pi_1", amount_received=2000), T0
    )
    booked = Changeset()
    booked.save(captured)
    a, b = await _two_stores(database)
    try:
        await asyncio.gather(
            *((a if i % 2 else b).commit(Changeset(ledger=list(booked.ledger))) for i in range(20))
        )
        day = await a.ledger_transactions("stripe", T0, T0 + timedelta(days=1))
        assert [t.kind.value for t in day] == ["authorization", "authorization_release", "charge"]
        sums = await b.ledger_balances("m1", T0.date() + timedelta(days=2))
        assert sums[("psp_receivable", "usd")] == (2000 - 88, 0)  # 2.9% + 30 once
        assert sums[("sales", "usd")] == (-2000, 0)
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_two_dispatchers_routing_one_outbox_make_one_delivery_each(database: str) -> None:
    a, b = await _two_stores(database)
    try:
        await a.commit(
            Changeset(
                events=[
                    DomainEvent("payment.succeeded", "pay_1", "m1", T0, {}, id=f"e{n}")
                    for n in range(20)
                ]
            )
        )
        # Both read the same outbox before either routes it, as two processes may.
        seen_a, seen_b = await a.undelivered_events(100), await b.undelivered_events(100)
        assert len(seen_a) == len(seen_b) == 20

        async def route(store: PostgresStore, events: list[StoredEvent], tag: str) -> None:
            await store.commit(
                Changeset(
                    routed=[e.id for e in events],
                    deliveries=[delivery(f"{tag}-{e.id}", event_id=e.id) for e in events],
                )
            )

        await asyncio.gather(route(a, seen_a, "a"), route(b, list(reversed(seen_b)), "b"))
        assert await a.undelivered_events(100) == []
        claimed = await a.claim_deliveries(T0, 30, 100)
        assert sorted(d.event_id for d in claimed) == sorted(f"e{n}" for n in range(20))
    finally:
        await asyncio.gather(a.close(), b.close())


_OPEN_ONCE = """
import asyncio, sys
from paymesh.adapters.postgres import PostgresStore
from paymesh.adapters.postgres.migrate import MIGRATION_LOCK

async def main():
    store = PostgresStore(sys.argv[1], min_size=1, max_size=1)
    await store.open()
    await store.close()

asyncio.run(main())
"""


async def test_processes_starting_together_migrate_once(postgres: PostgresServer) -> None:
    name = f"fresh_{os.getpid()}_{next(_names)}"
    dsn = await postgres.create_database(name)  # empty: no schema yet
    gate = await asyncpg.connect(dsn)
    procs: list[asyncio.subprocess.Process] = []
    try:
        # Hold the migration lock so that every process is waiting on it, then let them race.
        await gate.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _OPEN_ONCE,
                dsn,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        for _ in range(300):
            waiting = await gate.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if waiting == len(procs):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"only {waiting} of {len(procs)} processes reached the migration lock")
        await gate.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        outputs = await asyncio.gather(*(p.communicate() for p in procs))
        assert [p.returncode for p in procs] == [0] * len(procs), outputs
        head = ScriptDirectory(str(SCRIPTS)).get_current_head()
        assert await gate.fetch("SELECT version_num FROM alembic_version") == [(head,)]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await gate.close()
        await _drop(postgres, name)


async def test_stores_opening_together_in_one_process_share_the_schema(database: str) -> None:
    stores = [PostgresStore(database, min_size=1, max_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await save(stores[0], payment("pay_1"))
        assert all([(await s.get_payment("pay_1")) is not None for s in stores])
    finally:
        await asyncio.gather(*(s.close() for s in stores))


def test_a_server_that_cannot_start_fails_the_run_saying_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A directory of server programs that all fail, as a broken installation would.
    bindir = Path(tempfile.mkdtemp(prefix="paymesh-fake-pg-"))
    try:
        for program in ("initdb", "pg_ctl", "postgres"):
            script = bindir / program
            script.write_text("#!/bin/sh\necho 'initdb: error: disk full' >&2\nexit 1\n")
            script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        bindir.chmod(0o755)
        monkeypatch.setenv("PAYMESH_PG_BINDIR", str(bindir))
        with pytest.raises(PostgresUnavailable, match="disk full"), running_postgres():
            pass
    finally:
        for child in bindir.iterdir():
            child.unlink()
        bindir.rmdir()


async def test_stores_of_two_databases_migrate_together_in_one_process(
    postgres: PostgresServer,
) -> None:
    # Alembic's `op` and `context` are process-wide: two upgrades interleaving on one event
    # loop would send one database's statements down the other's connection.
    names = [f"fresh_{os.getpid()}_{next(_names)}" for _ in range(2)]
    stores = [PostgresStore(await postgres.create_database(n), min_size=1) for n in names]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.open() for s in stores)), timeout=30)
        for s in stores:
            await save(s, payment("pay_1"))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
        for name in names:
            await _drop(postgres, name)


async def test_a_key_revoked_by_one_process_is_refused_by_another_within_2_s(database: str) -> None:
    from datetime import UTC, datetime

    from paymesh.service.apikeys import Authenticator, create_key, revoke_key
    from tests.integration.test_key_revocation import refused_after

    server, cli = await _two_stores(database)
    try:
        kept, revoked = (await create_key(cli, "shop", T0), await create_key(cli, "shop", T0))
        auth = Authenticator(server)
        for secret in (kept, revoked):  # both cached by the server
            assert (await auth.identify(f"Bearer {secret}"))[0] == "shop"
        await revoke_key(cli, revoked[:10], datetime.now(UTC))
        assert await refused_after(auth, revoked, within=2.0) <= 2.0
        assert (await auth.identify(f"Bearer {kept}"))[0] == "shop"
    finally:
        await asyncio.gather(server.close(), cli.close())


def _upgrade_to(dsn: str, revision: str) -> None:
    """Migrate a database to `revision` only, as an older paymesh left it."""
    from functools import partial

    from alembic import command
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    async def run() -> None:
        engine = create_async_engine(
            "postgresql+asyncpg://", poolclass=NullPool, async_creator=partial(asyncpg.connect, dsn)
        )
        try:
            async with engine.begin() as conn:

                def upgrade(connection: object) -> None:
                    config = Config()
                    config.set_main_option("script_location", str(SCRIPTS))
                    config.attributes["connection"] = connection
                    command.upgrade(config, revision)

                await conn.run_sync(upgrade)
        finally:
            await engine.dispose()

    asyncio.run(run())


async def test_consumer_marks_older_than_migration_0003_count_as_written_at_it(
    postgres: PostgresServer,
) -> None:
    from datetime import UTC, datetime

    from paymesh.ports.store import AlreadyProcessed

    name = f"fresh_{os.getpid()}_{next(_names)}"
    dsn = await postgres.create_database(name)
    try:
        await asyncio.to_thread(_upgrade_to, dsn, "0002")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("INSERT INTO processed VALUES ('webhook:adyen', 'psp_1')")
        finally:
            await conn.close()
        store = PostgresStore(dsn, min_size=1)
        await store.open()  # to head: 0003 stamps the mark with the migration's time
        try:
            migrated = datetime.now(UTC)
            assert (
                await store.purge_expired(migrated, migrated - timedelta(minutes=1))
            ).processed == 0
            with pytest.raises(AlreadyProcessed):
                await store.commit(Changeset(processed=[("webhook:adyen", "psp_1")]))
            assert (
                await store.purge_expired(migrated, migrated + timedelta(minutes=1))
            ).processed == 1
        finally:
            await store.close()
    finally:
        await _drop(postgres, name)
