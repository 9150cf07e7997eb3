"""Per-key rate limit: a token bucket.

`take` is a pure function of the bucket, the time and the rate, so it is tested without
sleeping; `RateLimiter` keeps one bucket per key in memory, so it limits one process (embedded
mode). Processes sharing a PostgreSQL database use `PostgresRateLimiter`, the same bucket in a
table; both are the `paymesh.ports.ratelimit.RateLimit` port.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    at: float


def take(
    bucket: Bucket | None, now: float, rate: float, burst: float
) -> tuple[bool, float, Bucket]:
    """(allowed, seconds until a token is available, new bucket)."""
    if bucket is None:
        bucket = Bucket(burst, now)
    tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
    if tokens >= 1.0:
        return True, 0.0, Bucket(tokens - 1.0, now)
    return False, (1.0 - tokens) / rate, Bucket(tokens, now)


class RateLimiter:
    """`rate` requests per second per key, bursts up to `burst`; rate 0 turns it off."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._buckets: dict[str, Bucket] = {}

    async def check(self, key: str, now: float | None = None) -> float | None:
        """None if allowed, else the seconds to wait (for Retry-After); `now` is for tests.

        Async only to be the port: nothing here awaits, so a check is still atomic on the
        event loop."""
        if self.rate <= 0:
            return None
        allowed, wait, bucket = take(
            self._buckets.get(key), time.monotonic() if now is None else now, self.rate, self.burst
        )
        self._buckets[key] = bucket
        return None if allowed else wait
