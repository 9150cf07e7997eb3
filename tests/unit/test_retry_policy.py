from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from paymesh.ports.bus import Delivery, RetryPolicy, Target
from paymesh.service.retry import after_failure, after_success, backoff

T0 = datetime(2026, 11, 24, tzinfo=UTC)


def delivery(attempts: int = 3, age: int = 3600) -> Delivery:
    target = Target("t", "http", url="http://x", retry_policy=RetryPolicy(attempts, age))
    return Delivery("d", "e", "m", "r", target, event_time=T0, created_at=T0, next_attempt_at=T0)


@given(st.integers(1, 40), st.floats(0, 1))
def test_backoff_is_within_the_exponential_envelope(attempt: int, r: float) -> None:
    delay = backoff(attempt, lambda: r)
    assert 0 <= delay <= min(300.0, 2.0 ** (attempt - 1))


def test_three_retries_means_four_tries_then_dead() -> None:
    d = delivery(attempts=3)
    for i in range(1, 4):
        after_failure(d, T0 + timedelta(seconds=i), f"HTTP 500 #{i}", lambda: 0.5)
        assert d.status == "pending"
    after_failure(d, T0 + timedelta(seconds=9), "HTTP 500 #4", lambda: 0.5)
    assert d.status == "dead"
    assert [a.error for a in d.history] == [f"HTTP 500 #{i}" for i in range(1, 5)]


def test_too_old_an_event_dies_even_with_tries_left() -> None:
    d = delivery(attempts=100, age=60)
    after_failure(d, T0 + timedelta(seconds=59), "timeout", lambda: 1.0)
    assert d.status == "dead"


def test_retry_after_is_a_floor() -> None:
    d = delivery()
    after_failure(d, T0, "HTTP 429", lambda: 0.0, retry_after=7)
    assert d.next_attempt_at == T0 + timedelta(seconds=7)


def test_success_is_final() -> None:
    d = after_success(delivery(), T0)
    assert (d.status, d.attempts) == ("delivered", 1)
