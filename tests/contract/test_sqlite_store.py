import os
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from paymesh.adapters.sqlite import SqliteStore
from paymesh.adapters.sqlite.schema import MIGRATIONS
from paymesh.ports.store import (
    AlreadyProcessed,
    Changeset,
    IdempotencyConflict,
    IdempotencyRecord,
    IdempotencyWrite,
)
from tests.contract.bus_store_contract import BusStoreContract
from tests.contract.store_contract import StoreContract


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    return sqlite_store


class TestSqliteStore(StoreContract):
    pass


async def test_a_reopened_file_keeps_everything(tmp_path: Path) -> None:
    from tests.contract.store_contract import payment, save

    first = SqliteStore(tmp_path / "p.db")
    await first.open()
    await save(first, payment("pay_1"))
    await first.close()
    second = SqliteStore(tmp_path / "p.db")
    await second.open()
    stored = await second.get_payment("pay_1")
    assert stored is not None and stored.amount == 2000
    await second.close()


class TestSqliteBusStore(BusStoreContract):
    pass


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_the_database_file_its_wal_shm_and_write_lock_are_the_owners_alone(
    tmp_path: Path,
) -> None:
    from tests.contract.store_contract import payment, save

    old = os.umask(0o022)  # the usual umask, which leaves new files world-readable
    try:
        store = SqliteStore(tmp_path / "data" / "paymesh.db")
        await store.open()
        await save(store, payment("pay_1"))  # a write: the -wal and -shm now exist
        names = ("paymesh.db", "paymesh.db-wal", "paymesh.db-shm", "paymesh.db.write.lock")
        files = [tmp_path / "data" / n for n in names]
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(tmp_path / "data") == 0o700
        await store.close()
    finally:
        os.umask(old)


async def test_an_existing_readable_database_file_is_made_the_owners_alone(tmp_path: Path) -> None:
    from tests.contract.store_contract import payment, save

    path = tmp_path / "paymesh.db"
    store = SqliteStore(path)
    await store.open()
    await save(store, payment("pay_1"))
    await store.close()
    path.chmod(0o644)  # as an earlier version left it
    (tmp_path / "paymesh.db-wal").write_bytes(b"")  # as a crash leaves one behind
    (tmp_path / "paymesh.db-wal").chmod(0o644)
    again = SqliteStore(path)
    await again.open()
    assert (_mode(path), _mode(tmp_path / "paymesh.db-wal")) == (0o600, 0o600)
    assert (await again.get_payment("pay_1")) is not None
    await again.close()


def file_at_schema(path: str, version: int) -> sqlite3.Connection:
    """A database file as a release at schema `version` left it (the first `version`
    migrations applied), open for a test to put rows in."""
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        conn.executescript(f"BEGIN;{script};PRAGMA user_version={number};COMMIT;")
    return conn


async def test_consumer_marks_older_than_the_migration_count_as_written_at_it(
    tmp_path: Path,
) -> None:
    # A file at schema 4 has marks with no time: none may be purged as if ancient.
    path = str(tmp_path / "old.db")
    conn = file_at_schema(path, 4)
    conn.execute("INSERT INTO processed (consumer, event_id) VALUES ('webhook:adyen', 'psp_1')")
    conn.execute("INSERT INTO api_keys VALUES ('h1', 'm1', 'pmk_aaaaaa', 0)")
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        migrated = datetime.now(UTC)
        assert (await store.purge_expired(migrated, migrated - timedelta(minutes=1))).processed == 0
        with pytest.raises(AlreadyProcessed):
            await store.commit(Changeset(processed=[("webhook:adyen", "psp_1")]))
        key = await store.find_api_key("h1")
        assert key is not None and key.revoked_at is None
        assert (await store.purge_expired(migrated, migrated + timedelta(minutes=1))).processed == 1
    finally:
        await store.close()


async def test_blobs_kept_before_the_rowid_table_survive_its_migration(tmp_path: Path) -> None:
    """Blobs moved to a rowid table (for incremental blob I/O): a file from before keeps
    its checkpoint and routing table, and takes a checkpoint in parts after."""
    path = str(tmp_path / "old.db")
    conn = file_at_schema(path, 7)  # the last schema before the blobs' rowid table
    conn.execute("INSERT INTO blobs VALUES ('fraud-features', 1, x'00ff00')")
    conn.execute("INSERT INTO blobs VALUES ('routing:m1', 2, x'7b7d')")
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.get_blob("fraud-features") == b"\x00\xff\x00"
        assert await store.get_blob("routing:m1") == b"{}"
        await store.put_blob_parts(
            "fraud-features", [b"new ", memoryview(b"one")], datetime.now(UTC)
        )
        assert await store.get_blob("fraud-features") == b"new one"
        assert await store.get_blob("routing:m1") == b"{}"
    finally:
        await store.close()


async def test_idempotency_records_kept_before_the_rowid_table_survive_its_migration(
    tmp_path: Path,
) -> None:
    """Idempotency records moved to a rowid table: a file from before still replays a
    completed reply, still refuses a second claim of a key in flight, and still purges
    what has expired."""
    now = datetime.now(UTC)
    now_us = int(now.timestamp() * 1_000_000)
    hour_us = 3_600_000_000
    path = str(tmp_path / "old.db")
    conn = file_at_schema(path, 8)  # the last schema with the WITHOUT ROWID table
    conn.executemany(
        "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            ("m1", "done", "fp1", "pay_1", "t1", 0, now_us + hour_us, 1, 201, b'{"id":"pay_1"}'),
            (
                "m1",
                "flying",
                "fp2",
                "pay_2",
                "t2",
                now_us + hour_us,
                now_us + hour_us,
                0,
                None,
                None,
            ),
            ("m1", "old", "fp3", "pay_3", "t3", 0, now_us - hour_us, 1, 402, b"{}"),
        ],
    )
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        done = await store.get_idempotency("m1", "done")
        assert done is not None
        assert (done.resource_id, done.completed, done.response_status, done.response_body) == (
            "pay_1",
            True,
            201,
            b'{"id":"pay_1"}',
        )
        again = IdempotencyRecord(
            merchant_id="m1",
            key="flying",
            fingerprint="fp2",
            resource_id="pay_9",
            lease_token="t9",
            locked_until=now + timedelta(seconds=30),
            expires_at=now + timedelta(hours=24),
        )
        with pytest.raises(IdempotencyConflict):
            await store.commit(Changeset(idempotency=IdempotencyWrite(again, now)))
        flying = await store.get_idempotency("m1", "flying")
        assert flying is not None and (flying.resource_id, flying.completed) == ("pay_2", False)
        reply = replace(flying, completed=True, response_status=201, response_body=b"{}")
        await store.commit(Changeset(idempotency=IdempotencyWrite(reply, now, "t2")))
        assert await store.get_idempotency("m1", "flying") == reply
        assert (await store.purge_expired(now, now - timedelta(days=1))).idempotency == 1
        assert await store.get_idempotency("m1", "old") is None
        assert await store.get_idempotency("m1", "done") == done
    finally:
        await store.close()
