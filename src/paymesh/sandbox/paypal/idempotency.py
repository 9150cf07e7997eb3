"""`PayPal-Request-Id`, as PayPal documents it.

    first use              claim the id, execute, remember which resource it made
    while in flight        409 RESOURCE_CONFLICT (PREVIOUS_REQUEST_IN_PROGRESS)
    used again             200 with the *latest* state of that resource
    other body or path     the same: the id alone names the request, the body is not read
    after the retention    forgotten; the id may be used again (Orders v2 keeps ids 6 hours)
    beyond `max_entries`   the oldest remembered id is forgotten early (memory is bounded)

PayPal scopes an id to one "API call type" ("unique for both each request and
an API call type"), so the key is (operation, id): one id may create an order
and capture one. Unlike Stripe, PayPal replays the resource as it is *now*
("returns the latest status of the previous request"), not a frozen copy, and
it does not compare bodies, so a reused id with a different amount silently
returns the first order: the client's ids must be unique per intent.

Only requests that made or changed something are remembered. A request that
failed (400, 404, 422, an injected 5xx/429) leaves the id free, because it
created nothing whose "latest status" could be returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from paymesh.sandbox.limits import forget_oldest
from paymesh.sandbox.paypal.errors import PayPalError

__all__ = ["TTL_SECONDS", "RequestIds"]

T = TypeVar("T")

TTL_SECONDS = 6 * 60 * 60


@dataclass(slots=True)
class _Entry(Generic[T]):
    expires_at: float
    result: T | None = None  # None while the first request is executing


def _in_flight(entry: _Entry[Any]) -> bool:
    return entry.result is None


class RequestIds(Generic[T]):
    def __init__(
        self,
        ttl_seconds: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._max = max_entries
        # One fixed TTL: insertion order is expiry order, so the sweep stops at the first
        # entry still alive.
        self._entries: dict[tuple[str, str], _Entry[T]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, operation: str, request_id: str) -> T | None:
        """None: the caller owns the id and must `save` or `release` it; else the result."""
        now = self._clock()
        self._sweep(now)
        key = (operation, request_id)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(now + self._ttl)
            forget_oldest(self._entries, self._max, keep=_in_flight)
            return None
        if entry.result is None:
            raise PayPalError.request_in_progress()
        return entry.result

    def save(self, operation: str, request_id: str, result: T) -> None:
        self._entries[(operation, request_id)].result = result

    def release(self, operation: str, request_id: str) -> None:
        key = (operation, request_id)
        entry = self._entries.get(key)
        if entry is not None and entry.result is None:
            del self._entries[key]

    def _sweep(self, now: float) -> None:
        while self._entries:
            key = next(iter(self._entries))
            entry = self._entries[key]
            if entry.expires_at > now or entry.result is None:
                return
            del self._entries[key]
