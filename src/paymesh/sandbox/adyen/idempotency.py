"""Adyen's idempotent requests, as its "API idempotency" page describes them.

An `Idempotency-Key` (at most 64 characters) on a POST, for the company account:

    first use            claim the key (in flight), execute, save status + body if it succeeded
    while in flight      409, errorCode 704, header `transient-error: true`: retry later
    same request again   the saved status and body; the response echoes `Idempotency-Key`
    another request      422, errorCode 704, `transient-error: false`: never with this key
    after 31 days        the key is forgotten and may be reused
    beyond `max_entries` the oldest saved key is forgotten early (memory is bounded)

Adyen stores keys "at a company account level", not per merchant account: the same key sent
for two merchant accounts of one company is one request (the second, whose body names another
merchant account, is refused as another request). Adyen has no replay-marker header; the
echoed `Idempotency-Key` is how it says a key was honoured. Answers that did nothing (an error
before or during execution) are not saved, so the key stays free for a corrected request.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import msgspec

from paymesh.sandbox.adyen.errors import AdyenError
from paymesh.sandbox.limits import forget_oldest

__all__ = ["MAX_KEY_LENGTH", "IdempotencyStore", "SavedAnswer", "request_fingerprint"]

TTL_SECONDS = 31 * 24 * 60 * 60
MAX_KEY_LENGTH = 64


@dataclass(slots=True)
class SavedAnswer:
    fingerprint: bytes
    expires_at: float
    status: int | None = None  # None while the first request is still executing
    body: bytes = b""


def _in_flight(entry: SavedAnswer) -> bool:
    return entry.status is None


def request_fingerprint(method: str, path: str, body: object) -> bytes:
    """What "the same request" means: method, path and JSON body, key order ignored."""
    encoded = msgspec.json.encode([method, path, body], order="sorted")
    return hashlib.blake2b(encoded, digest_size=16).digest()


class IdempotencyStore:
    def __init__(self, ttl_seconds: float = TTL_SECONDS, max_entries: int = 100_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        # One fixed TTL: insertion order is expiry order, so the sweep only looks at the front.
        self._entries: dict[str, SavedAnswer] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, key: str, fingerprint: bytes) -> SavedAnswer | None:
        """None: the caller owns the key and must `save` or `release` it; else the answer."""
        now = time.monotonic()
        self._sweep(now)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = SavedAnswer(fingerprint, now + self._ttl)
            forget_oldest(self._entries, self._max, keep=_in_flight)
            return None
        if entry.fingerprint != fingerprint:
            raise AdyenError.key_reused()
        if entry.status is None:
            raise AdyenError.key_in_flight()
        return entry

    def save(self, key: str, status: int, body: bytes) -> None:
        entry = self._entries[key]
        entry.status, entry.body = status, body

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
