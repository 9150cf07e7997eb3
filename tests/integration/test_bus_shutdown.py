"""A bus loop stops when its task is cancelled, even when the cancel lands just as the loop's
wake-up fires (an event committed at shutdown). Both loops wait for their wake-up with a
timeout, polling; `asyncio.wait_for` on Python 3.11 would drop a cancel that arrives as the
thing it waits for completes, and a stopping server would hang there for ever, so they use
`asyncio.timeout` instead."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.adapters.nats.bus import Layout, OutboxRelay
from paymesh.adapters.sqlite import SqliteStore
from paymesh.service.bus import EventBus
from paymesh.service.event_router import Router


async def stops_at_once(loop: Any) -> bool:
    """Start `loop.run()`, let it park on its wake-up, then notify and cancel together, five
    times over; whether every run ended within a second of its cancel."""
    for _ in range(5):
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0.02)  # its first pass done (an empty outbox), parked
        loop.notify()
        await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1.0)
        while not task.done():  # a hung loop must not outlive the test
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if not done:
            return False
    return True


async def test_the_in_process_bus_stops_when_cancelled_as_it_is_notified(
    sqlite_store: SqliteStore,
) -> None:
    sender = AiohttpTargetSender()
    try:
        bus = EventBus(
            sqlite_store, Router([]), {}, sender, lambda: datetime.now(UTC), poll_seconds=0.05
        )
        assert await stops_at_once(bus)
    finally:
        await sender.aclose()


async def test_the_outbox_relay_stops_when_cancelled_as_it_is_notified(
    sqlite_store: SqliteStore,
) -> None:
    # An empty outbox: the relay never reaches JetStream, so it needs none.
    relay = OutboxRelay(sqlite_store, cast(Any, None), Layout(prefix="t"), poll_seconds=0.05)
    assert await stops_at_once(relay)
