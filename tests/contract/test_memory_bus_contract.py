"""The bus contract on the in-process bus over the in-memory store: the in-memory bus fake
other tests can trust, since it passes what the SQLite-backed bus passes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from paymesh.adapters.memory import MemoryStore
from tests.contract.bus_contract import BusContract
from tests.contract.test_event_bus_contract import InProcessHarness


class MemoryHarness(InProcessHarness):
    """The SQLite harness with its store swapped: the store outlives a killed bus, as the
    file does, so the next bus finds the deliveries the dead one leased."""

    def __init__(self) -> None:
        super().__init__(Path("never-opened.db"))  # its SqliteStore is replaced before `open`
        self.memory = MemoryStore()
        self.store = self.memory

    async def idle(self) -> bool:
        # Every event routed (its deliveries made in the same commit), none still pending.
        return self.memory.outstanding() == 0


@pytest.fixture
async def harness() -> AsyncIterator[MemoryHarness]:
    h = MemoryHarness()
    await h.store.open()
    yield h
    await h.close()


class TestInProcessBusOnMemory(BusContract):
    pass
