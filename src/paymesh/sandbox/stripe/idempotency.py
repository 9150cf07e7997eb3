"""Stripe's idempotent requests, as its API reference describes them.

For one account, an `Idempotency-Key` on a POST:

    first use            claim the key (in flight), execute, save status + body
    while in flight      409 idempotency_key_in_use; the first request goes on
    same request again   the saved status and body, with `Idempotent-Replayed: true`
    other parameters     400 idempotency_error (the key stays bound to the first)
    after 24 hours       the key is forgotten and may be reused
    beyond `max_entries` the oldest answered key is forgotten early (memory is bounded)

Only requests that started executing are saved, whatever their outcome (a
402 decline is replayed as a 402). Requests that failed parameter validation,
collided with an in-flight one, or were refused by an injected 5xx/429 are
not: the claim is released and the key stays free.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import msgspec

from paymesh.sandbox.limits import forget_oldest
from paymesh.sandbox.stripe.errors import StripeError

__all__ = ["IdempotencyStore", "SavedResponse", "request_fingerprint"]

TTL_SECONDS = 24 * 60 * 60


@dataclass(slots=True)
class SavedResponse:
    fingerprint: bytes
    expires_at: float
    status: int | None = None  # None while the first request is still executing
    body: bytes = b""
    request_id: str = ""


def _in_flight(entry: SavedResponse) -> bool:
    return entry.status is None


def request_fingerprint(method: str, path: str, params: object) -> bytes:
    """What "the same request" means: method, path and parameters, order-insensitive."""
    encoded = msgspec.json.encode([method, path, params], order="sorted")
    return hashlib.blake2b(encoded, digest_size=16).digest()


class IdempotencyStore:
    def __init__(self, ttl_seconds: float = TTL_SECONDS, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        # Insertion order is expiry order (one fixed TTL), so expired keys are
        # always at the front and are swept in amortised O(1).
        self._entries: dict[str, SavedResponse] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, key: str, fingerprint: bytes) -> SavedResponse | None:
        """None: the caller owns the key and must `save` or `release` it.

        Otherwise the saved response to replay; raises 409 while the key is in
        flight and 400 when it was used with other parameters.
        """
        now = time.monotonic()
        self._sweep(now)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = SavedResponse(fingerprint, now + self._ttl)
            forget_oldest(self._entries, self._max, keep=_in_flight)
            return None
        if entry.status is None:
            raise StripeError.idempotency_key_in_use(key)
        if entry.fingerprint != fingerprint:
            raise StripeError.idempotency_mismatch(key)
        return entry

    def save(self, key: str, status: int, body: bytes, request_id: str) -> None:
        entry = self._entries[key]
        entry.status, entry.body, entry.request_id = status, body, request_id

    def release(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.status is None:
            del self._entries[key]

    def _sweep(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest_key = next(iter(entries))
            oldest = entries[oldest_key]
            if oldest.expires_at > now or oldest.status is None:
                return
            del entries[oldest_key]
