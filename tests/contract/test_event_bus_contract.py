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
from tests.contract.bus_contract import NAMES, BusContract, Recorder, cancelled, event, rule


class InProcessHarness:
    def __init__(self, path: Path, on_routing: tuple[str, ...] = ()) -> None:
        self.path = path
        self.on_routing = on_routing
        self.store: BusBackend = SqliteStore(path)
        self.recorder = Recorder()
        self.sender = AiohttpTargetSender()
        self.bus: EventBus | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self, rules: list[Rule]) -> None:
        self.bus = await self.stopped_bus(rules)
        self.task = asyncio.create_task(self.bus.run())

    async def stopped_bus(self, rules: list[Rule]) -> EventBus:
        """A bus over the stored rules plus `rules`, not running: a test drives its steps."""
        for r in rules:
            await self.store.put_rule(r)
        router = Router([])
        router.load(await self.store.rules())
        return EventBus(
            self.store,
            router,
            {name: self.recorder.builtin(name) for name in NAMES},
            self.sender,
            lambda: datetime.now(UTC),
            lease_seconds=1.0,
            poll_seconds=0.05,
            retry_base_seconds=0.01,
            on_routing=self.on_routing,
        )

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


@pytest.fixture
async def routing_harness(tmp_path: Path) -> AsyncIterator[InProcessHarness]:
    # Every quick target tried as its event is routed ("slow" blocks, which routing must not).
    h = InProcessHarness(tmp_path / "bus.db", on_routing=("a", "b", "flaky", "down"))
    await h.store.open()
    yield h
    await h.close()


class TestInProcessBusTryingOnRouting(BusContract):
    """The same contract when built-ins are tried as their event is routed: retries, dead
    letters, redrive and once-only delivery hold as they do for claimed deliveries."""

    @pytest.fixture
    def harness(self, routing_harness: InProcessHarness) -> InProcessHarness:
        return routing_harness


async def test_an_on_routing_target_is_recorded_delivered_in_the_routing_commit(
    routing_harness: InProcessHarness,
) -> None:
    h = routing_harness
    bus = await h.stopped_bus([rule("paid", "a", "flaky", "slow")])
    h.recorder.fail["flaky"] = 1
    paid = event()
    await h.store.commit(Changeset(events=[paid]))

    assert await bus.route_pending() == 1  # routing alone: nothing claimed, no task started

    with contextlib.closing(sqlite3.connect(h.path)) as db:
        rows = dict(
            (target, (status, attempts))
            for target, status, attempts in db.execute(
                "SELECT target_id, status, attempts FROM deliveries WHERE event_id = ?", (paid.id,)
            )
        )
    assert rows == {"a": ("delivered", 1), "flaky": ("pending", 1), "slow": ("pending", 0)}
    assert h.recorder.received("a") == [paid.id]
    assert h.recorder.attempts["slow"] == 0  # not an on-routing target: left to the claims
    claimed = await h.store.claim_deliveries(datetime.now(UTC), 1.0, 10)
    assert "a" not in {d.target.id for d in claimed}  # delivered: nothing left to claim
