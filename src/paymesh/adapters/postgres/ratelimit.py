"""The rate limit on PostgreSQL: one token bucket per key, shared by every process.

The in-memory limiter would give each of N API processes its own bucket, so a merchant would
get N times its limit; here the bucket is a row of `rate_buckets` and every process spends
from it. A check is one statement, so one round trip:

- the upsert takes the row's lock, so concurrent checks of one key (from any connection) run
  one after another and each sees the tokens the one before it left: none over-admits;
- the time is the database's `clock_timestamp()`, not the callers', so processes whose clocks
  disagree still refill the bucket from one clock. It is read in the update's sub-select,
  which runs once the row is locked: the checks of a key then see times in the order they
  hold the lock. (Taken before the lock, as `VALUES` is, a check that waited would carry a
  time older than the one stored by the check it waited for.)
- elapsed time below zero (the server's clock stepped back) counts as zero and the row takes
  the new time, so the bucket never stalls; the cost is at most one extra burst.

The arithmetic is `paymesh.service.ratelimit.take`'s: refill at `rate` per second up to
`burst`, spend one token if there is one, else report the wait until there is.
"""

from __future__ import annotations

from paymesh.adapters.postgres.store import PostgresStore

# $1 key, $2 rate (tokens per second), $3 burst. A new key starts full: `take(None, ...)`.
# `admitted` is stored only to be returned: before PostgreSQL 18, RETURNING sees the row as
# updated, and the tokens left cannot tell "spent the last one" from "had less than one".
CHECK = """
INSERT INTO rate_buckets AS b (key, tokens, refilled_at, admitted)
VALUES ($1, CASE WHEN $3::float8 >= 1 THEN $3::float8 - 1 ELSE $3::float8 END,
        clock_timestamp(), $3::float8 >= 1)
ON CONFLICT (key) DO UPDATE SET (tokens, refilled_at, admitted) = (
    SELECT CASE WHEN r.tokens >= 1 THEN r.tokens - 1 ELSE r.tokens END, r.now, r.tokens >= 1
    FROM (SELECT least($3::float8, b.tokens + $2::float8
                       * greatest(0, extract(epoch FROM n.now - b.refilled_at)::float8))
                     AS tokens, n.now
          FROM (SELECT clock_timestamp() AS now) AS n) AS r)
RETURNING admitted, tokens
"""


class PostgresRateLimiter:
    """`rate` requests per second per key, bursts up to `burst`, across every process on the
    database; rate 0 turns it off without a query. The store must be open before a check."""

    def __init__(self, store: PostgresStore, rate: float, burst: float | None = None) -> None:
        self.store = store
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)

    async def check(self, key: str) -> float | None:
        """None if allowed, else the seconds to wait (for Retry-After)."""
        if self.rate <= 0:
            return None
        admitted, tokens = await self.store.pool.fetchrow(CHECK, key, self.rate, self.burst)
        return None if admitted else (1.0 - tokens) / self.rate
