"""Retry policy for deliveries: pure functions, randomness injected.

Exponential backoff with full jitter (delay drawn in [0, min(cap, base * 2^n)]), spreading
retries of a failing target so they do not arrive in waves; a target's own Retry-After is a
floor. A delivery dies when its attempts or its event's age exceed the target's policy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from paymesh.ports.bus import Attempt, Delivery

BASE_SECONDS = 1.0
CAP_SECONDS = 300.0


def backoff(
    attempt: int, rand: Callable[[], float], base: float = BASE_SECONDS, cap: float = CAP_SECONDS
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    return rand() * min(cap, base * 2.0 ** (attempt - 1))


def after_failure(
    delivery: Delivery,
    now: datetime,
    error: str,
    rand: Callable[[], float],
    retry_after: float | None = None,
    base: float = BASE_SECONDS,
) -> Delivery:
    """Record a failed attempt: reschedule it, or mark it dead when the policy is spent."""
    policy = delivery.target.retry_policy
    delivery.attempts += 1
    delivery.history.append(Attempt(now, error))
    delay = max(backoff(delivery.attempts, rand, base), retry_after or 0.0)
    next_at = now + timedelta(seconds=delay)
    too_old = next_at - delivery.event_time >= timedelta(seconds=policy.maximum_event_age_seconds)
    # maximum_retry_attempts counts retries: the first try plus that many more.
    if delivery.attempts > policy.maximum_retry_attempts or too_old:
        delivery.status = "dead"
        delivery.next_attempt_at = now
    else:
        delivery.next_attempt_at = next_at
    return delivery


def after_success(delivery: Delivery, now: datetime) -> Delivery:
    delivery.attempts += 1
    delivery.status = "delivered"
    delivery.next_attempt_at = now
    return delivery
