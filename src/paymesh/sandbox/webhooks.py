"""Background webhook delivery shared by every sandbox.

A sandbox hands over a finished notification (URL, raw body, headers) and
returns at once: delivery never blocks the API request that caused it, as at a
real PSP. The sender then behaves like one, including its bad habits when the
faults ask for them: late (`webhook_delay_ms`), twice (`webhook_duplicate_rate`,
the same body again) or out of order (`webhook_reorder`: a small batch is held
and sent shuffled). A delivery that fails (connection error or non-2xx) is
retried a few times with exponential backoff and jitter, then dropped. At most
`max_pending` wait (queued or between retries): beyond that new ones are
dropped, so a receiver that is down cannot grow the sandbox's memory without end.

Headers may be given as a function so that a timestamped signature (Stripe's
`t=...`) is made afresh for each attempt, as the PSP re-signs its retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from paymesh.sandbox.faults import FaultInjector

__all__ = ["DeliveryStats", "WebhookSender"]

log = logging.getLogger(__name__)

Headers = Mapping[str, str] | Callable[[], Mapping[str, str]]

# A reordered batch is sent when this many notifications wait, or when the
# first one has waited this long: enough to shuffle, never a stall.
_REORDER_BATCH = 4
_REORDER_WINDOW_S = 0.05


@dataclass(frozen=True, slots=True)
class _Delivery:
    url: str
    body: bytes
    headers: Headers


@dataclass
class DeliveryStats:
    """Counts kept for tests and for the sandbox's own diagnostics."""

    sent: int = 0
    delivered: int = 0
    retried: int = 0
    dropped: int = 0
    duplicated: int = 0
    last_errors: deque[str] = field(default_factory=lambda: deque(maxlen=50))


class WebhookSender:
    """Delivers notifications in the background; `start` before use, `stop` after."""

    def __init__(
        self,
        faults: FaultInjector,
        *,
        # Real PSPs retry a failed webhook for days (Stripe 3, Adyen 30); a sandbox that gave up
        # within a second would lose verdicts across a receiver's restart. About 45 s here.
        max_attempts: int = 12,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        timeout_s: float = 10.0,
        max_in_flight: int = 64,
        # Queued or being retried, at most: a receiver that is down must not grow the
        # sandbox's memory without end (`paymesh.sandbox.limits`). Beyond it, dropped.
        max_pending: int = 100_000,
    ) -> None:
        self._faults = faults
        self._max_pending = max_pending
        self._overflowing = False
        #: Queued or being delivered (duplicates counted): 0 means nothing more will arrive.
        self._unfinished = 0
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout_s = timeout_s
        self._max_in_flight = max_in_flight
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self.stats = DeliveryStats()

    @property
    def idle(self) -> bool:
        """Every notification sent so far was delivered or dropped: nothing more arrives
        until something new is sent. Tests wait on it instead of sleeping."""
        return self._unfinished == 0

    @property
    def running(self) -> bool:
        return self._worker is not None

    def send(self, url: str, body: bytes, headers: Headers) -> None:
        """Queue one notification; never waits. Ignored (and counted) before `start`."""
        if self._worker is None:
            self.stats.dropped += 1
            return
        if self._queue.qsize() + len(self._tasks) >= self._max_pending:
            self.stats.dropped += 1
            if not self._overflowing:  # once per overflow, not once per notification
                self._overflowing = True
                log.warning(
                    "webhooks: %d waiting for delivery; dropping new ones until "
                    "the receiver catches up",
                    self._max_pending,
                )
            return
        self._overflowing = False
        self._unfinished += 1
        self._queue.put_nowait(_Delivery(url, body, headers))

    async def start(self) -> None:
        if self._worker is not None:
            return
        # aiohttp rather than httpx: httpx's pool polls every open connection on each
        # request, which made webhook delivery cost grow with load (seen in a profile).
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            connector=aiohttp.TCPConnector(limit=self._max_in_flight),
        )
        self._slots = asyncio.Semaphore(self._max_in_flight)
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        """Stop at once: queued and in-flight notifications are abandoned."""
        worker, self._worker = self._worker, None
        pending = [t for t in (worker, *self._tasks) if t is not None]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._unfinished = 0
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if not self._faults.config.webhook_reorder:
                self._dispatch(first)
                continue
            batch = [first, *await self._gather_batch()]
            self._faults.rng.shuffle(batch)
            for delivery in batch:
                self._dispatch(delivery)

    async def _gather_batch(self) -> list[_Delivery]:
        batch: list[_Delivery] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _REORDER_WINDOW_S
        while len(batch) < _REORDER_BATCH - 1:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for hands back a webhook that
            # arrives in the turn a cancel lands and drops the cancel, and `stop` then waited
            # for this worker for ever.
            try:
                async with asyncio.timeout(remaining):
                    batch.append(await self._queue.get())
            except TimeoutError:
                break
        return batch

    def _dispatch(self, delivery: _Delivery) -> None:
        copies = 2 if self._faults.duplicate_webhook() else 1
        self.stats.duplicated += copies - 1
        self._unfinished += copies - 1
        delay_s = self._faults.config.webhook_delay_ms / 1000
        for _ in range(copies):
            task = asyncio.create_task(self._deliver(delivery, delay_s))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: _Delivery, delay_s: float) -> None:
        try:
            await self._attempts(delivery, delay_s)
        finally:
            self._unfinished -= 1

    async def _attempts(self, delivery: _Delivery, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        assert self._client is not None and self._slots is not None
        for attempt in range(1, self._max_attempts + 1):
            headers = delivery.headers() if callable(delivery.headers) else delivery.headers
            async with self._slots:
                self.stats.sent += 1
                try:
                    async with self._client.post(
                        delivery.url, data=delivery.body, headers=dict(headers)
                    ) as response:
                        await response.read()
                        status = response.status
                    if 200 <= status < 300:
                        self.stats.delivered += 1
                        return
                    failure = f"HTTP {status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failure = f"{type(exc).__name__}: {exc}"
            if attempt == self._max_attempts:
                break
            self.stats.retried += 1
            await asyncio.sleep(self._backoff(attempt))
        self.stats.dropped += 1
        self.stats.last_errors.append(f"{delivery.url}: {failure}")
        log.warning("webhook to %s dropped after %d attempts: %s", delivery.url, attempt, failure)

    def _backoff(self, attempt: int) -> float:
        """Exponential with 'equal jitter': between half and all of the step."""
        step: float = min(self._backoff_s * 2.0 ** (attempt - 1), self._max_backoff_s)
        return step * (0.5 + 0.5 * self._faults.rng.random())
