"""The RateLimit port's contract, run against the in-memory limiter and the PostgreSQL one.

The tests below the contract are what only a shared database gives: processes (here, stores
with pools of their own) spending from one budget.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from itertools import count

import asyncpg
import pytest

from paymesh.adapters.postgres import PostgresStore
from paymesh.adapters.postgres.ratelimit import PostgresRateLimiter
from paymesh.ports.ratelimit import RateLimit
from paymesh.service.ratelimit import RateLimiter
from tests.support.postgres import PostgresServer

#: Makes a limiter of `rate` per second and `burst`, with no bucket spent yet.
Make = Callable[[float, float], RateLimit]

_names = count()


async def _admitted(limiter: RateLimit, key: str, n: int) -> int:
    return sum([await limiter.check(key) is None for _ in range(n)])


class RateLimitContract:
    """A backend proves itself by subclassing this and providing a `make` fixture."""

    async def test_a_burst_is_admitted_and_the_next_is_refused_with_the_wait(
        self, make: Make
    ) -> None:
        # A slow rate, so that the time the checks take refills nothing worth a token.
        limiter = make(1.0, 5.0)
        assert await _admitted(limiter, "k", 5) == 5
        wait = await limiter.check("k")
        assert wait is not None and 0.9 < wait <= 1.0

    async def test_tokens_come_back_at_the_rate(self, make: Make) -> None:
        limiter = make(50.0, 2.0)
        assert await _admitted(limiter, "k", 2) == 2
        wait = await limiter.check("k")
        assert wait is not None and 0 < wait <= 1 / 50
        await asyncio.sleep(wait + 0.01)
        assert await limiter.check("k") is None

    async def test_the_bucket_refills_no_further_than_the_burst(self, make: Make) -> None:
        limiter = make(10.0, 2.0)
        assert await _admitted(limiter, "k", 2) == 2
        await asyncio.sleep(0.3)  # three tokens' worth
        assert await _admitted(limiter, "k", 3) == 2

    async def test_keys_are_limited_separately(self, make: Make) -> None:
        limiter = make(1.0, 1.0)
        assert await limiter.check("a") is None
        assert await limiter.check("b") is None
        assert await limiter.check("a") is not None
        assert await limiter.check("b") is not None

    async def test_rate_zero_admits_everything(self, make: Make) -> None:
        limiter = make(0.0, 1.0)
        assert await _admitted(limiter, "k", 1000) == 1000


class TestMemoryRateLimit(RateLimitContract):
    @pytest.fixture
    def make(self) -> Make:
        return lambda rate, burst: RateLimiter(rate, burst)


@pytest.fixture(scope="session")
def rate_db(postgres: PostgresServer) -> str:
    """The DSN of one migrated database, shared by the tests in turn."""

    async def create() -> str:
        store = PostgresStore(await postgres.create_database("rate_limits"), min_size=1)
        await store.open()
        await store.close()
        return store.dsn

    return asyncio.run(create())


@pytest.fixture
async def database(rate_db: str) -> str:
    """The migrated database with every bucket gone."""
    conn = await asyncpg.connect(rate_db)
    try:
        await conn.execute("DELETE FROM rate_buckets")
    finally:
        await conn.close()
    return rate_db


@pytest.fixture
async def store(database: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(database, min_size=1)
    await s.open()
    yield s
    await s.close()


class TestPostgresRateLimit(RateLimitContract):
    @pytest.fixture
    def make(self, store: PostgresStore) -> Make:
        return lambda rate, burst: PostgresRateLimiter(store, rate, burst)


async def test_two_processes_share_one_budget(database: str) -> None:
    a, b = PostgresStore(database, max_size=10), PostgresStore(database, max_size=10)
    await asyncio.gather(a.open(), b.open())
    try:
        # A slow rate: the 20 checks are done long before a token comes back.
        limiters = [PostgresRateLimiter(s, rate=0.01, burst=10) for s in (a, b)]
        results = await asyncio.gather(*(limiters[i % 2].check("k") for i in range(20)))
        assert sum(r is None for r in results) == 10
        assert all(r is not None and r > 0 for r in results if r is not None)
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_a_check_that_waited_for_the_lock_counts_the_time_it_waited(
    store: PostgresStore,
) -> None:
    # The clock is read once the row is locked: read before, a check that waited would be
    # judged as of when it started waiting, and the row would move back in time.
    limiter = PostgresRateLimiter(store, rate=10.0, burst=1.0)
    assert await limiter.check("k") is None
    holder = await asyncpg.connect(store.dsn)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM rate_buckets WHERE key = 'k' FOR UPDATE")

        async def queued() -> int:  # sessions PostgreSQL reports waiting for a lock
            return int(
                await holder.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )

        began = time.monotonic()
        waiting = asyncio.create_task(limiter.check("k"))
        while not await queued():  # the check is queued behind the row lock
            assert time.monotonic() - began < 10, "the check never waited for the lock"
            await asyncio.sleep(0.01)
        # Three tokens' worth of time pass while it waits: the time is what is under test.
        await asyncio.sleep(max(0.0, began + 0.3 - time.monotonic()))
        assert await queued() == 1 and not waiting.done()
        await tx.commit()
        assert await waiting is None
    finally:
        await holder.close()


async def test_rate_zero_never_touches_the_database() -> None:
    never_opened = PostgresStore("postgresql://nobody@127.0.0.1:1/none")
    limiter = PostgresRateLimiter(never_opened, rate=0)
    assert await limiter.check("k") is None


async def test_a_migrated_database_has_the_buckets_table(postgres: PostgresServer) -> None:
    name = f"rate_fresh_{os.getpid()}_{next(_names)}"
    store = PostgresStore(await postgres.create_database(name), min_size=1)
    await store.open()
    try:
        persistence = await store.pool.fetchval(
            "SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass('rate_buckets')"
        )
        assert persistence == "u"  # unlogged: see the migration
        # 0002 made the table; later migrations (0003: key revocation) keep it.
        assert await store.pool.fetchval("SELECT version_num FROM alembic_version") >= "0002"
        assert await PostgresRateLimiter(store, rate=1, burst=1).check("k") is None
    finally:
        await store.close()
        conn = await asyncpg.connect(postgres.dsn())
        try:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await conn.close()
