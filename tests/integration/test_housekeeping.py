"""Housekeeping purges expired idempotency records and old consumer marks, and only those."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from paymesh.adapters.sqlite import SqliteStore
from paymesh.ports.store import AlreadyProcessed, Changeset, Purged
from paymesh.service.housekeeping import Housekeeping
from tests.contract.store_contract import claim


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    return sqlite_store


async def test_a_pass_purges_everything_due_in_batches_and_nothing_else(store: SqliteStore) -> None:
    now = datetime.now(UTC)
    for i in range(5):  # claimed 25 h ago: expired
        await store.commit(
            Changeset(idempotency=claim(f"old{i}", f"t{i}", now=now - timedelta(hours=25)))
        )
    await store.commit(Changeset(idempotency=claim("fresh", "t", now=now)))
    await store.commit(Changeset(processed=[("webhook:adyen", f"psp_{i}") for i in range(3)]))

    # 44 days on, every record has expired (the fresh one too), but the webhook marks must
    # still stand: Adyen retries for up to 30 days.
    early = Housekeeping(store, lambda: now + timedelta(days=44), batch=2)
    assert await early.run_once() == Purged(idempotency=6, processed=0)
    with pytest.raises(AlreadyProcessed):
        await store.commit(Changeset(processed=[("webhook:adyen", "psp_0")]))

    late = Housekeeping(store, lambda: now + timedelta(days=46), batch=2)
    assert await late.run_once() == Purged(idempotency=0, processed=3)
    await store.commit(Changeset(processed=[("webhook:adyen", "psp_0")]))  # gone


async def test_a_live_claim_is_kept_and_the_fresh_record_replays(store: SqliteStore) -> None:
    now = datetime.now(UTC)
    await store.commit(Changeset(idempotency=claim("live", "t", now=now)))
    assert await Housekeeping(store, lambda: now).run_once() == Purged(0, 0)
    record = await store.get_idempotency("m1", "live")
    assert record is not None and record.lease_token == "t"


async def test_webhook_marks_cannot_be_kept_shorter_than_a_psp_redelivers(
    store: SqliteStore,
) -> None:
    with pytest.raises(ValueError, match="at least 35 days"):
        Housekeeping(store, lambda: datetime.now(UTC), keep_processed=timedelta(days=7))


async def test_run_forever_purges_at_start_and_then_every_interval(store: SqliteStore) -> None:
    clock = [datetime.now(UTC)]
    house = Housekeeping(store, lambda: clock[0], interval_seconds=0.05)
    await store.commit(Changeset(idempotency=claim("a", "t", now=clock[0] - timedelta(days=2))))
    task = asyncio.create_task(house.run_forever())
    try:
        for _ in range(100):
            if await store.get_idempotency("m1", "a") is None:
                break
            await asyncio.sleep(0.02)
        assert await store.get_idempotency("m1", "a") is None
        await store.commit(Changeset(idempotency=claim("b", "t", now=clock[0])))
        clock[0] += timedelta(days=2)  # "b" expires; the next pass takes it
        for _ in range(100):
            if await store.get_idempotency("m1", "b") is None:
                break
            await asyncio.sleep(0.02)
        assert await store.get_idempotency("m1", "b") is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
