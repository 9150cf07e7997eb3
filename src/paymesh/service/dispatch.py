"""The outbox dispatcher: delivers committed events to the handlers subscribed to them.

Events are read from the store, never from memory, so what was committed before a crash is
delivered after it. Delivery is at-least-once; every handler is idempotent by event id. The
full rule language, per-target retries and dead letters come with the event bus; here a
failing handler is retried on a later pass with backoff and the event stays undelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from paymesh.ports.store import Store, StoredEvent

log = logging.getLogger(__name__)

Handler = Callable[[StoredEvent], Awaitable[None]]


class Dispatcher:
    def __init__(self, store: Store, subscriptions: dict[str, list[tuple[str, Handler]]],
                 poll_seconds: float = 1.0, batch: int = 500) -> None:
        self.store = store
        self.subscriptions = subscriptions
        self.poll_seconds = poll_seconds
        self.batch = batch
        self._wake = asyncio.Event()
        self._retry_at: dict[str, tuple[float, int]] = {}  # event id -> (monotonic, failures)

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.drain()
            except Exception:
                log.exception("dispatch pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    async def drain(self) -> int:
        """Deliver what is due; returns how many events were marked delivered."""
        delivered = 0
        while True:
            events = await self.store.undelivered_events(self.batch)
            now = time.monotonic()
            due = [e for e in events if self._retry_at.get(e.id, (0.0, 0))[0] <= now]
            done = [e.id for e in await asyncio.gather(*(self._deliver(e) for e in due))
                    if e is not None]
            if done:
                await self.store.mark_delivered(done)
                delivered += len(done)
            if len(events) < self.batch or not done:
                return delivered

    async def _deliver(self, event: StoredEvent) -> StoredEvent | None:
        for name, handler in self.subscriptions.get(event.type, []):
            try:
                await handler(event)
            except Exception as exc:
                failures = self._retry_at.get(event.id, (0.0, 0))[1] + 1
                delay = min(60.0, 0.5 * 2 ** failures)
                self._retry_at[event.id] = (time.monotonic() + delay, failures)
                log.warning("handler %s failed on event %s (%s); retry in %.1fs", name,
                            event.id, type(exc).__name__, delay)
                return None
        self._retry_at.pop(event.id, None)
        return event
