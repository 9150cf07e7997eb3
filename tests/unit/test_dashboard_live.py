"""The dashboard's live figures: rates and latency percentiles over a window, from the
process's Prometheus counters (what `histogram_quantile(rate(...))` would say)."""

from __future__ import annotations

import pytest

from paymesh.adapters.metrics import PaymeshMetrics
from paymesh.entrypoints.http.dashboard.live import LiveFigures, quantile


def test_a_quantile_is_interpolated_inside_its_bucket() -> None:
    # 10 under 1 ms, 10 more under 5 ms, none slower.
    buckets = [(0.001, 10.0), (0.005, 20.0), (float("inf"), 20.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.001)
    assert quantile(0.75, buckets) == pytest.approx(0.003)
    assert quantile(0.25, buckets) == pytest.approx(0.0005)


def test_past_the_last_bound_the_answer_is_that_bound_and_none_without_observations() -> None:
    assert quantile(0.99, [(0.01, 1.0), (float("inf"), 10.0)]) == 0.01
    assert quantile(0.5, [(0.01, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.5, []) is None


def _create(metrics: PaymeshMetrics, seconds: float, decision: str = "allow") -> None:
    metrics.fraud_decisions.labels(decision).inc()
    metrics.http_duration.labels("POST", "/v1/payments").observe(seconds)


def test_rates_and_percentiles_cover_the_window_not_the_whole_run() -> None:
    metrics = PaymeshMetrics()
    live = LiveFigures(metrics, window=10.0)
    for _ in range(100):  # an old, slow burst: must not colour the window after it
        _create(metrics, 2.0)
    assert live.now(at=0.0)["payments_per_second"] == 0.0

    for _ in range(18):
        _create(metrics, 0.004)
    _create(metrics, 0.004, "block")
    _create(metrics, 0.004, "review")
    metrics.payments.labels("failed").inc(5)
    figures = live.now(at=10.0)
    assert figures["payments_per_second"] == 2.0  # 20 in 10 s
    assert figures["decline_rate"] == 0.25  # 5 of 20
    assert figures["fraud_per_second"] == {"allow": 1.8, "review": 0.1, "block": 0.1}
    p50 = figures["latency_ms"]["p50"]
    assert 2.5 < p50 <= 5.0  # inside the 2.5-5 ms bucket, nowhere near the old 2 s
    assert figures["latency_ms"]["p99"] <= 5.0


def test_with_nothing_in_the_window_there_is_no_latency_and_no_decline_rate() -> None:
    live = LiveFigures(PaymeshMetrics())
    live.now(at=0.0)
    figures = live.now(at=20.0)
    assert figures["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    assert figures["decline_rate"] is None
