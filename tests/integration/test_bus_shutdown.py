"""A bus loop stops when its task is cancelled, even when the cancel lands just as the loop's
wake-up fires (an event committed at shutdown). Both loops wait for their wake-up with a
timeout, polling; `asyncio.wait_for` on Python 3.11 would drop a cancel that arrives as the
thing it waits for completes, and a stopping server would hang there for ever, so they use
`asyncio.timeout` instead."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.adapters.nats.bus import Dispatcher, Layout, OutboxRelay, connect, ensure_streams
from paymesh.adapters.sqlite import SqliteStore
from paymesh.service.bus import EventBus, Targets
from paymesh.service.event_router import Router
from tests.support.nats import NatsServer


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


async def test_a_nats_worker_ends_with_every_loop_when_a_cancel_is_lost(
    sqlite_store: SqliteStore, nats_server: NatsServer
) -> None:
    """A dispatcher cancelled while a loop lost its cancel (as nats-py's fetch can on 3.11)
    ends only when every loop has, and none goes on failing once the connection closes."""
    nc = await connect(nats_server.url, "shutdown-test")
    sender = AiohttpTargetSender()
    layout = Layout(prefix=f"shut{uuid.uuid4().hex[:8]}", ack_wait_seconds=1.0)
    try:
        js = nc.jetstream()
        await ensure_streams(js, layout)
        dispatcher = Dispatcher(
            sqlite_store, js, layout, Router([]), Targets({}, sender), lambda: datetime.now(UTC)
        )
        fetching = asyncio.Event()
        lost = 0
        real_fetch = dispatcher._fetch

        async def fetch_that_loses_a_cancel(sub: Any, batch: int) -> list[Any]:
            nonlocal lost
            fetching.set()
            try:
                return await real_fetch(sub, batch)
            except asyncio.CancelledError:
                lost += 1
                return []  # what wait_for hands back when the cancel and a message coincide

        dispatcher._fetch = fetch_that_loses_a_cancel  # type: ignore[method-assign]
        worker = asyncio.create_task(dispatcher.run())
        await asyncio.wait_for(fetching.wait(), 10)
        await asyncio.sleep(0.1)  # both fetch loops parked in their fetch
        worker.cancel()
        await asyncio.wait({worker}, timeout=5)
        assert worker.done(), "the worker did not end within 5 s of its cancel"
        assert lost >= 1, "no cancel reached a fetch: the test did not test anything"
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        loops = [t for t in left if "Dispatcher" in repr(t.get_coro())]
        assert loops == [], f"loops outlived their worker: {loops}"
    finally:
        await nc.close()
        await sender.aclose()
