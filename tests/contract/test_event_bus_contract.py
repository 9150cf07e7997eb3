"""The bus contract on the in-process bus: SQLite outbox, deliveries leased in the store."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.adapters.sqlite import SqliteStore
from paymesh.domain.events import DomainEvent
from paymesh.ports.bus import Delivery, Rule
from paymesh.ports.bus_backend import BusBackend
from paymesh.ports.store import Changeset
from paymesh.service import ids
from paymesh.service.bus import EventBus
from paymesh.service.event_router import Router
from tests.contract.bus_contract import NAMES, BusContract, Recorder, cancelled


class InProcessHarness:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store: BusBackend = SqliteStore(path)
        self.recorder = Recorder()
        self.sender = AiohttpTargetSender()
        self.bus: EventBus | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, rules: list[Rule]) -> None:
        for r in rules:
            await self.store.put_rule(r)
        router = Router([])
        router.load(await self.store.rules())
        self.bus = EventBus(
            self.store,
            router,
            {name: self.recorder.builtin(name) for name in NAMES},
            self.sender,
            lambda: datetime.now(UTC),
            lease_seconds=1.0,
            poll_seconds=0.05,
            retry_base_seconds=0.01,
        )
        self.task = asyncio.create_task(self.bus.run())

    async def kill(self) -> None:
        assert self.bus is not None and self.task is not None
        await cancelled(self.task)
        await self.bus.stop()  # its leases stay: the next bus waits them out, as after a crash
        self.bus = None

    async def route_again(self, event: DomainEvent) -> None:
        assert self.bus is not None
        # A second router: the same event, rule and target make no second delivery.
        now = datetime.now(UTC)
        again = [
            Delivery(
                id=ids.new_id("dlv"),
                event_id=event.id,
                merchant_id=event.merchant_id,
                rule=route.rule.name,
                target=route.target,
                event_time=event.time,
                created_at=now,
                next_attempt_at=now,
            )
            for route in self.bus.router.routes(event.envelope())
        ]
        await self.store.commit(Changeset(routed=[event.id], deliveries=again))
        self.notify()

    def notify(self) -> None:
        if self.bus is not None:
            self.bus.notify()

    async def idle(self) -> bool:
        # Read from the file, as another process would: every event routed (its deliveries
        # made in the same commit) and no delivery still pending, leased or not.
        with contextlib.closing(sqlite3.connect(self.path)) as db:
            (busy,) = db.execute(
                "SELECT (SELECT count(*) FROM events WHERE delivered = 0)"
                " + (SELECT count(*) FROM deliveries WHERE status = 'pending')"
            ).fetchone()
        return bool(busy == 0)

    async def close(self) -> None:
        if self.bus is not None:
            await self.kill()
        await self.sender.aclose()
        await self.store.close()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[InProcessHarness]:
    h = InProcessHarness(tmp_path / "bus.db")
    await h.store.open()
    yield h
    await h.close()


class TestInProcessBus(BusContract):
    pass
