"""The wrk benchmark reads its figures from wrk's own summary: a misread would report a
throughput or a p99 nobody measured."""

from __future__ import annotations

import pytest

from benchmarks.wrk_payments import _parse

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:8798/v1/payments
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   330.12ms   80.40ms 612.00ms   70.11%
    Req/Sec   198.05     40.12   270.00     68.00%
  Latency Distribution
     50%  305.83ms
     75%  380.10ms
     90%  452.71ms
     99%  1.21s
  1584 requests in 8.06s, 1.21MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:    196.53
Transfer/sec:    153.41KB
"""


def test_wrk_summary_is_read_with_its_units() -> None:
    figures = _parse(WRK_OUTPUT)
    assert figures["requests"] == 1584
    assert figures["seconds"] == pytest.approx(8.06)
    assert (figures["non_2xx"], figures["socket_errors"]) == (7, 5)
    assert figures["p50_ms"] == pytest.approx(305.83)
    assert figures["p90_ms"] == pytest.approx(452.71)
    assert figures["p99_ms"] == pytest.approx(1210.0)


def test_microsecond_latencies_and_a_clean_run() -> None:
    out = WRK_OUTPUT.replace("305.83ms", "812.00us").replace(
        "  Socket errors: connect 0, read 2, write 0, timeout 3\n  Non-2xx or 3xx responses: 7\n",
        "",
    )
    figures = _parse(out)
    assert figures["p50_ms"] == pytest.approx(0.812)
    assert (figures["non_2xx"], figures["socket_errors"]) == (0, 0)


def test_no_summary_is_an_error_not_zero_throughput() -> None:
    with pytest.raises(RuntimeError, match="no summary"):
        _parse("unable to connect to 127.0.0.1:8798 Connection refused\n")


SCORING_EXPOSITION = """# HELP paymesh_fraud_scoring_duration_seconds Time to score a payment
# TYPE paymesh_fraud_scoring_duration_seconds histogram
paymesh_fraud_scoring_duration_seconds_bucket{le="0.0001"} 10.0
paymesh_fraud_scoring_duration_seconds_bucket{le="0.00025"} 600.0
paymesh_fraud_scoring_duration_seconds_bucket{le="0.0005"} 960.0
paymesh_fraud_scoring_duration_seconds_bucket{le="0.001"} 985.0
paymesh_fraud_scoring_duration_seconds_bucket{le="0.002"} 995.0
paymesh_fraud_scoring_duration_seconds_bucket{le="0.005"} 1000.0
paymesh_fraud_scoring_duration_seconds_bucket{le="+Inf"} 1000.0
paymesh_fraud_scoring_duration_seconds_count 1000.0
paymesh_psp_call_duration_seconds_bucket{le="0.002",operation="authorize",psp="stripe"} 7.0
"""


def test_the_scoring_p99_is_the_first_bucket_holding_99_percent() -> None:
    from benchmarks.wrk_payments import scoring_buckets, scoring_summary

    buckets = scoring_buckets(SCORING_EXPOSITION)
    assert buckets[0] == (0.0001, 10.0) and buckets[-1] == (float("inf"), 1000.0)
    assert scoring_summary(buckets) == {
        "count": 1000.0,
        "within_2ms": 0.995,
        "p99_at_most_ms": 2.0,
    }
    assert scoring_summary([])["p99_at_most_ms"] is None
