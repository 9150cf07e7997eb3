from paymesh.service.ratelimit import RateLimiter, take


async def test_a_burst_is_allowed_then_refused_with_the_wait() -> None:
    limiter = RateLimiter(rate=2, burst=2)
    assert await limiter.check("k", now=0.0) is None
    assert await limiter.check("k", now=0.0) is None
    wait = await limiter.check("k", now=0.0)
    assert wait is not None and abs(wait - 0.5) < 1e-9
    assert await limiter.check("k", now=0.5) is None


async def test_keys_are_limited_separately() -> None:
    limiter = RateLimiter(rate=1, burst=1)
    assert await limiter.check("a", now=0.0) is None
    assert await limiter.check("b", now=0.0) is None
    assert await limiter.check("a", now=0.0) is not None


async def test_rate_zero_turns_the_limit_off() -> None:
    limiter = RateLimiter(rate=0)
    assert all([await limiter.check("k", now=0.0) is None for _ in range(10_000)])


def test_tokens_refill_at_the_rate_and_cap_at_the_burst() -> None:
    ok, _, bucket = take(None, 0.0, rate=10, burst=5)
    assert ok and bucket.tokens == 4
    ok, _, bucket = take(bucket, 100.0, rate=10, burst=5)
    assert ok and bucket.tokens == 4
