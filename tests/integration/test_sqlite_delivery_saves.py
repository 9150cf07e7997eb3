"""SQLite saves the attempts that end together as one writer job: each is still saved, each
caller still returns only once it is, and a caller that gives up does not undo the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from paymesh.adapters.sqlite import SqliteStore
from tests.contract.bus_store_contract import delivery, route
from tests.contract.store_contract import T0


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    return sqlite_store


def _count_jobs(store: SqliteStore) -> list[int]:
    jobs = [0]
    write = store._write

    async def counted(job: Any, *, alone: bool = False) -> Any:
        jobs[0] += 1
        return await write(job, alone=alone)

    store._write = counted  # type: ignore[method-assign]
    return jobs


async def test_attempts_ending_together_are_saved_by_one_job_each_of_them(
    store: SqliteStore,
) -> None:
    for i in range(20):
        await route(store, f"e{i}", delivery(f"d{i}", event_id=f"e{i}"))
    claimed = await store.claim_deliveries(T0, 30, 50)
    assert len(claimed) == 20
    for d in claimed:
        d.status, d.attempts = "delivered", 1
    jobs = _count_jobs(store)
    await asyncio.gather(*(store.save_delivery(d) for d in claimed))
    assert jobs[0] == 1
    # Saved, and the lease dropped: nothing is due again, no dead letters.
    assert await store.claim_deliveries(T0, 30, 50) == []
    assert (await store.dead_letters("m1", 50, None))[0] == []


async def test_a_caller_that_gives_up_leaves_the_batch_written(store: SqliteStore) -> None:
    await route(store, "e1", delivery("d1"))
    await route(store, "e2", delivery("d2", event_id="e2"))
    first, second = await store.claim_deliveries(T0, 30, 10)
    first.status = second.status = "dead"
    impatient = asyncio.create_task(store.save_delivery(first))
    patient = asyncio.create_task(store.save_delivery(second))
    await asyncio.sleep(0)
    impatient.cancel()
    await patient
    with pytest.raises(asyncio.CancelledError):
        await impatient
    await asyncio.sleep(0.05)  # the write the impatient caller joined has finished too
    dead, _ = await store.dead_letters("m1", 10, None)
    assert sorted(d.id for d in dead) == ["d1", "d2"]
