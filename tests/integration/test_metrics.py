"""`/metrics` on a real server: behind its token, exact counts, no ids in label values."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tests.integration.conftest import Server, start
from tests.integration.test_event_bus import LOCAL, PAY, Receiver, http_rule, wait_for
from tests.integration.test_payments_api import pay
from tests.support.bus_state import wait_rule_settled
from tests.support.live_server import free_port, live_server

TOKEN = "metrics-token-for-tests"


@pytest.fixture
def metered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("PAYMESH_METRICS_TOKEN", TOKEN)
    yield from start(tmp_path)


def scrape(server: Server) -> str:
    r = httpx.get(f"{server.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def value(text: str, series: str) -> float:
    """The sample of `series` (name and labels exactly as exposed); 0 if absent."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


CREATED = 'paymesh_http_requests_total{method="POST",route="/v1/payments",status_class="2xx"}'
SUCCEEDED = 'paymesh_payments_total{outcome="succeeded"}'
AUTHORIZE = 'paymesh_psp_calls_total{operation="authorize",psp="stripe"}'


def test_a_created_payment_counts_once_in_requests_outcomes_psp_calls_and_fraud(
    metered: Server,
) -> None:
    before = scrape(metered)
    with metered.client() as http:
        r = pay(http)
        assert r.status_code == 201 and r.json()["status"] == "succeeded"
    # A young generation's pass, made sure of: the server runs in this process (a thread),
    # and whether its own allocations set one off in this short window is up to the
    # collector (and a fraud checkpoint load pauses it).
    gc.collect(0)
    after = scrape(metered)
    for series in (
        CREATED,
        SUCCEEDED,
        AUTHORIZE,
        'paymesh_fraud_decisions_total{decision="allow"}',
        'paymesh_http_request_duration_seconds_count{method="POST",route="/v1/payments"}',
        "paymesh_fraud_scoring_duration_seconds_count",
    ):
        assert value(after, series) - value(before, series) == 1.0, series
    assert value(after, 'paymesh_psp_call_errors_total{operation="authorize",psp="stripe"}') == 0
    assert value(after, 'paymesh_psp_circuit_state{psp="stripe",state="closed"}') == 1.0
    assert value(after, 'paymesh_psp_circuit_state{psp="stripe",state="open"}') == 0.0
    # The loop's lag, sampled ten times a second from the start (`LoopWatch`). On a quick
    # machine the payment can be done before the first sample is due: waited for, not raced.
    wait_for(lambda: value(scrape(metered), "paymesh_event_loop_lag_seconds_count") >= 1, 5)
    assert value(scrape(metered), "paymesh_event_loop_lag_seconds_count") >= 1
    # The cycle collector's passes, counted while the server runs (the one made above).
    assert value(after, 'paymesh_gc_pause_seconds_count{generation="0"}') >= 1


def test_routes_are_labelled_by_template_never_by_id(metered: Server) -> None:
    with metered.client() as http:
        payment_id = pay(http).json()["id"]
        assert http.get(f"/v1/payments/{payment_id}").status_code == 200
        assert http.get("/v1/payments/pay_nope").status_code == 404
        assert http.get("/no/such/path/pay_x").status_code == 404
    text = scrape(metered)
    get = 'paymesh_http_requests_total{method="GET",route="/v1/payments/{payment_id}",'
    assert value(text, get + 'status_class="2xx"}') == 1.0
    assert value(text, get + 'status_class="4xx"}') == 1.0
    assert (
        value(
            text, 'paymesh_http_requests_total{method="GET",route="unmatched",status_class="4xx"}'
        )
        == 1.0
    )
    assert payment_id not in text and "pay_nope" not in text and "pay_x" not in text


def test_declines_count_as_failed_payments_not_psp_errors(metered: Server) -> None:
    with metered.client() as http:
        r = pay(http, method="pm_card_chargeDeclined")
        assert r.status_code == 402 and r.json()["error"]["code"] == "card_declined"
    text = scrape(metered)
    assert (
        value(
            text,
            'paymesh_http_requests_total{method="POST",route="/v1/payments",status_class="4xx"}',
        )
        == 1.0
    )
    assert value(text, 'paymesh_payments_total{outcome="failed"}') == 1.0
    assert value(text, SUCCEEDED) == 0.0
    assert value(text, 'paymesh_psp_call_errors_total{operation="authorize",psp="stripe"}') == 0


def test_outbox_backlog_and_lag_are_exposed(metered: Server) -> None:
    text = scrape(metered)
    assert re.search(r"^paymesh_outbox_backlog \d+\.\d+$", text, re.M)
    assert re.search(r"^paymesh_outbox_lag_seconds \d+(\.\d+)?(e[-+]\d+)?$", text, re.M)


def test_metrics_need_the_token(metered: Server) -> None:
    assert httpx.get(f"{metered.base}/metrics").status_code == 401
    wrong = httpx.get(f"{metered.base}/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    # A merchant's API key is not the metrics token.
    as_merchant = httpx.get(
        f"{metered.base}/metrics", headers={"Authorization": f"Bearer {metered.key}"}
    )
    assert as_merchant.status_code == 401


def test_without_a_configured_token_metrics_do_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAYMESH_METRICS_TOKEN", raising=False)
    for server in start(tmp_path):
        r = httpx.get(f"{server.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "route_not_found"


DEPTH = 'paymesh_dead_letter_depth{target="merchant_http"}'


@pytest.fixture
def bus_metered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("PAYMESH_METRICS_TOKEN", TOKEN)
    yield from start(tmp_path, bus_retry_base=0.05, target_allowlist=LOCAL)


def test_dead_letter_depth_is_the_dead_letters_now_not_those_ever_made(
    bus_metered: Server,
) -> None:
    closed = free_port()  # nothing listens there yet: the one attempt is refused
    received = Receiver()
    hook = Starlette(routes=[Route("/hook", received.hook, methods=["POST"])])
    with bus_metered.client() as http:
        rule = http_rule(f"http://127.0.0.1:{closed}/hook", retries=0)
        assert http.put("/v1/rules/refused", json=rule).status_code == 200
        assert http.post("/v1/payments", json=PAY).status_code == 201
        wait_for(lambda: bool(http.get("/v1/dead-letters").json()["data"]))
        [dead] = http.get("/v1/dead-letters").json()["data"]
        assert value(scrape(bus_metered), DEPTH) == 1.0
        # The target is back: the redrive delivers it, so it does not die again.
        with live_server(hook, closed):
            assert http.post(f"/v1/dead-letters/{dead['id']}/redrive").status_code == 200
            wait_for(lambda: len(received.ok) == 1)
        wait_rule_settled(bus_metered.settings.sqlite_path, "refused")
    text = scrape(bus_metered)
    assert f"{DEPTH} 0.0" in text.splitlines()  # still exposed, now 0
    assert value(text, 'paymesh_dead_letters_total{target="merchant_http"}') == 1.0
