"""The in-memory store runs every store and bus-store contract SQLite and PostgreSQL run; the
tests below them are what only a store without a file needs saying."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from paymesh.adapters.memory import MemoryStore
from tests.contract.bus_store_contract import BusStoreContract
from tests.contract.store_contract import StoreContract, payment, save


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    s = MemoryStore()
    await s.open()
    yield s
    await s.close()


class TestMemoryStore(StoreContract):
    pass


class TestMemoryBusStore(BusStoreContract):
    pass


async def test_a_closed_store_refuses_work_and_a_reopened_one_keeps_everything() -> None:
    store = MemoryStore()
    await store.open()
    await save(store, payment("pay_1"))
    await store.close()
    assert not await store.ping()
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_payment("pay_1")
    await store.open()
    assert await store.ping()
    stored = await store.get_payment("pay_1")
    assert stored is not None and stored.amount == 2000
