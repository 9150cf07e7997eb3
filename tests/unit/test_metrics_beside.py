"""A deliverer process's counts in its server's scrape (`paymesh.adapters.metrics.beside`):
what an operator reads off one `/metrics` is what both processes did."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from paymesh.adapters.metrics import PaymeshMetrics
from paymesh.adapters.metrics.beside import exposition_file, publish, read_published


def values(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = list(text_string_to_metric_families(text.decode()))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "a family exposed twice"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_counters_and_histograms_are_summed_series_by_series(tmp_path: Path) -> None:
    server, deliverer = PaymeshMetrics(), PaymeshMetrics()
    server.deliveries.labels("confirmation", "delivered").inc(2)
    deliverer.deliveries.labels("confirmation", "delivered").inc(3)
    deliverer.deliveries.labels("merchant_http", "retrying").inc()  # the server has none
    server.psp_duration.labels("stripe", "authorize").observe(0.02)
    deliverer.psp_duration.labels("stripe", "authorize").observe(0.3)
    deliverer.psp_duration.labels("stripe", "authorize").observe(0.004)
    path = exposition_file(tmp_path / "paymesh.db")
    publish(deliverer.registry, path)

    got = values(server.exposition(read_published(path)))

    delivered = (("result", "delivered"), ("target", "confirmation"))
    assert got[("paymesh_delivery_attempts_total", delivered)] == 5
    retrying = (("result", "retrying"), ("target", "merchant_http"))
    assert got[("paymesh_delivery_attempts_total", retrying)] == 1
    call = (("operation", "authorize"), ("psp", "stripe"))
    assert got[("paymesh_psp_call_duration_seconds_count", call)] == 3
    assert got[("paymesh_psp_call_duration_seconds_sum", call)] == pytest.approx(0.324)
    for le, count in (("0.001", 0), ("0.005", 1), ("0.025", 2), ("0.25", 2), ("0.5", 3)):
        bucket = tuple(sorted((*call, ("le", le))))
        assert got[("paymesh_psp_call_duration_seconds_bucket", bucket)] == count, le


def test_what_describes_a_process_stays_the_server_s_own(tmp_path: Path) -> None:
    server, deliverer = PaymeshMetrics(), PaymeshMetrics()
    server.loop_lag.observe(0.001)
    deliverer.loop_lag.observe(2.0)  # the deliverer's loop, not the one serving the API
    server.outbox_backlog.set(1)
    deliverer.outbox_backlog.set(40)  # read from the one database: not to be added
    path = tmp_path / "d.prom"
    publish(deliverer.registry, path)

    got = values(server.exposition(read_published(path)))

    assert got[("paymesh_event_loop_lag_seconds_count", ())] == 1
    assert got[("paymesh_event_loop_lag_seconds_sum", ())] == 0.001
    assert got[("paymesh_outbox_backlog", ())] == 1


def test_without_a_published_file_the_scrape_is_the_server_s_alone(tmp_path: Path) -> None:
    server = PaymeshMetrics()
    server.payments.labels("succeeded").inc()
    assert read_published(tmp_path / "none.prom") is None
    assert server.exposition(None) == generate_latest(server.registry)


def test_a_file_is_replaced_whole(tmp_path: Path) -> None:
    deliverer = PaymeshMetrics()
    path = tmp_path / "d.prom"
    deliverer.payments.labels("succeeded").inc()
    publish(deliverer.registry, path)
    deliverer.payments.labels("succeeded").inc()
    publish(deliverer.registry, path)
    assert [p.name for p in tmp_path.iterdir()] == ["d.prom"]  # no part file left
    assert path.stat().st_mode & 0o777 == 0o600  # `/metrics` is behind a token
    text = read_published(path)
    assert text is not None
    assert 'paymesh_payments_total{outcome="succeeded"} 2.0' in text


def test_a_file_that_is_not_an_exposition_leaves_the_scrape_the_server_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = PaymeshMetrics()
    server.payments.labels("succeeded").inc()
    garbled = "paymesh_payments_total{outcome=succeeded 1\n"
    assert server.exposition(garbled) == generate_latest(server.registry)
    assert "could not be read" in caplog.text
