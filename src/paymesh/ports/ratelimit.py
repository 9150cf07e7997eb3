"""The rate-limit port: may this API key make a request now, and if not, how long to wait.

A port because where the buckets live decides whether the limit holds: in memory
(`paymesh.service.ratelimit.RateLimiter`) a bucket is one process's, so N API processes would
admit N times the limit; on PostgreSQL
(`paymesh.adapters.postgres.ratelimit.PostgresRateLimiter`) every process sharing the
database spends from one bucket per key. It is async because the shared bucket is a database
round trip.
"""

from __future__ import annotations

from typing import Protocol


class RateLimit(Protocol):
    async def check(self, key: str) -> float | None:
        """None if the request is allowed (and spends a token), else the seconds until one
        would be (for Retry-After)."""
        ...
