"""The live charts' figures: rates over the last few seconds, from this process's counters.

Prometheus counters only grow, so a rate is the difference of two readings over the time
between them, and a latency percentile is read from the difference of two readings of the
histogram's buckets (what PromQL's `histogram_quantile(rate(...))` does). The process keeps a
short history of readings; each poll of the dashboard compares now with the reading about
`WINDOW` seconds before. Nothing here is cluster-wide: with several API processes each answers
for its own traffic (Prometheus, scraping every process, is where the sum lives). The outbox
and the dead-letter queue are read from the shared store, so those two are the cluster's.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from paymesh.adapters.metrics import PaymeshMetrics

#: Seconds between the two readings a rate is taken over.
WINDOW = 10.0
#: The payment-creation route whose latency the charts show.
CREATE_ROUTE = ("POST", "/v1/payments")
_DURATION = "paymesh_http_request_duration_seconds"


@dataclass(frozen=True, slots=True)
class Reading:
    """One look at the counters: `at` in monotonic seconds."""

    at: float
    decisions: dict[str, float]  # fraud decisions so far, by decision: one per new payment
    outcomes: dict[str, float]  # payments reaching an outcome so far, by outcome
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count) of the route

    @property
    def created(self) -> float:
        return sum(self.decisions.values())


def read(registry: CollectorRegistry, at: float | None = None) -> Reading:
    decisions: dict[str, float] = {}
    outcomes: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for family in registry.collect():
        for s in family.samples:
            if s.name == "paymesh_fraud_decisions_total":
                decisions[s.labels["decision"]] = s.value
            elif s.name == "paymesh_payments_total":
                outcomes[s.labels["outcome"]] = s.value
            elif (
                s.name == _DURATION + "_bucket"
                and (s.labels.get("method"), s.labels.get("route")) == CREATE_ROUTE
            ):
                buckets.append((float(s.labels["le"]), s.value))
    buckets.sort()
    return Reading(time.monotonic() if at is None else at, decisions, outcomes, tuple(buckets))


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile of observations in cumulative `buckets`, interpolated linearly inside
    the bucket it falls in, as Prometheus does; None with no observations. Past the last
    finite bound the answer is that bound (the histogram knows no more)."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def figures(before: Reading, now: Reading) -> dict[str, Any]:
    """What happened between two readings, per second where it is a rate."""
    seconds = max(now.at - before.at, 1e-9)
    created = now.created - before.created
    failed = now.outcomes.get("failed", 0.0) - before.outcomes.get("failed", 0.0)
    earlier = dict(before.buckets)
    window = [(bound, count - earlier.get(bound, 0.0)) for bound, count in now.buckets]

    def ms(q: float) -> float | None:
        value = quantile(q, window)
        return None if value is None else round(value * 1000, 3)

    return {
        "payments_per_second": round(created / seconds, 3),
        "latency_ms": {"p50": ms(0.5), "p95": ms(0.95), "p99": ms(0.99)},
        # Declined by the PSP, over payments created in the window (None when there were none).
        "decline_rate": round(failed / created, 4) if created > 0 else None,
        "fraud_per_second": {
            d: round((now.decisions.get(d, 0.0) - before.decisions.get(d, 0.0)) / seconds, 3)
            for d in ("allow", "review", "block")
        },
    }


@dataclass
class LiveFigures:
    """A process's recent readings, kept so each poll has an earlier one to compare with."""

    metrics: PaymeshMetrics
    window: float = WINDOW
    history: deque[Reading] = field(default_factory=lambda: deque(maxlen=64))

    def now(self, at: float | None = None) -> dict[str, Any]:
        current = read(self.metrics.registry, at)
        # The newest reading at least a window old; failing that (just started) the oldest.
        before = next(
            (r for r in reversed(self.history) if current.at - r.at >= self.window),
            self.history[0] if self.history else current,
        )
        if not self.history or current.at - self.history[-1].at >= 1.0:
            self.history.append(current)
        return figures(before, current)
