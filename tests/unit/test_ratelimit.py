from paymesh.service.ratelimit import RateLimiter, take


def test_a_burst_is_allowed_then_refused_with_the_wait():
    limiter = RateLimiter(rate=2, burst=2)
    assert limiter.check("k", now=0.0) is None
    assert limiter.check("k", now=0.0) is None
    wait = limiter.check("k", now=0.0)
    assert wait is not None and abs(wait - 0.5) < 1e-9
    assert limiter.check("k", now=0.5) is None


def test_keys_are_limited_separately():
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.check("a", now=0.0) is None
    assert limiter.check("b", now=0.0) is None
    assert limiter.check("a", now=0.0) is not None


def test_rate_zero_turns_the_limit_off():
    limiter = RateLimiter(rate=0)
    assert all(limiter.check("k", now=0.0) is None for _ in range(10_000))


def test_tokens_refill_at_the_rate_and_cap_at_the_burst():
    ok, _, bucket = take(None, 0.0, rate=10, burst=5)
    assert ok and bucket.tokens == 4
    ok, _, bucket = take(bucket, 100.0, rate=10, burst=5)
    assert ok and bucket.tokens == 4
