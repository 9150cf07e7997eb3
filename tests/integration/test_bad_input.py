"""Every bad input of DESIGN.md's table: its status, its error body, and nothing written."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from paymesh.connectors.stripe.webhook import sign
from tests.integration.conftest import Server, start

GOOD = {"amount": 2000, "currency": "usd", "customer_id": "cus_1", "payment_method": "pm_card_visa"}


def state(server: Server) -> tuple[int, int]:
    """(payments, events) the merchant has: must not move on bad input."""
    with server.client() as http:
        payments = http.get("/v1/payments", params={"limit": 100}).json()["data"]
        events = http.get("/v1/events", params={"limit": 100}).json()["data"]
    return len(payments), len(events)


BAD_BODIES: list[tuple[bytes | dict[str, object], str | None, str]] = [
    (b"{not json", None, "json_invalid"),
    (b"", None, "body_missing"),
    (b"[1, 2]", None, "parameter_invalid"),
    ({k: v for k, v in GOOD.items() if k != "amount"}, "amount", "parameter_missing"),
    ({**GOOD, "amount": 0}, "amount", "parameter_invalid"),
    ({**GOOD, "amount": -5}, "amount", "parameter_invalid"),
    ({**GOOD, "amount": 20.5}, "amount", "parameter_invalid"),
    ({**GOOD, "amount": "2000"}, "amount", "parameter_invalid"),
    ({**GOOD, "amount": True}, "amount", "parameter_invalid"),
    ({**GOOD, "amount": 10**15}, "amount", "parameter_invalid"),
    ({**GOOD, "currency": "XYZ"}, "currency", "currency_unsupported"),
    ({**GOOD, "currency": "dollars"}, "currency", "parameter_invalid"),
    ({**GOOD, "customer_id": ""}, "customer_id", "parameter_invalid"),
    ({**GOOD, "capture_method": "later"}, "capture_method", "parameter_invalid"),
    ({**GOOD, "metadata": {"order_id": 5}}, "metadata", "parameter_invalid"),
    ({**GOOD, "card_number": "tok_1"}, "card_number", "parameter_unknown"),
    # A card number is refused as card data wherever it is, before its field is looked at.
    ({**GOOD, "card_number": "4242424242424242"}, "card_number", "card_data_not_allowed"),
    ({**GOOD, "connector": "acme"}, "connector", "parameter_invalid"),
    ({**GOOD, "country": "USA"}, "country", "parameter_invalid"),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(("body", "param", "code"), BAD_BODIES)
def test_bad_payment_bodies_get_400_with_the_param_and_change_nothing(
    shared: Server, body: bytes | dict[str, object], param: str | None, code: str
) -> None:
    before = state(shared)
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    with shared.client() as http:
        r = http.post("/v1/payments", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert error.get("param") == param
    assert error["message"]
    assert state(shared) == before


def test_card_numbers_are_not_echoed_back(shared: Server) -> None:
    with shared.client() as http:
        r = http.post("/v1/payments", json={**GOOD, "card_number": "4242424242424242"})
    assert "4242424242424242" not in r.text


def test_an_over_long_idempotency_key_is_400(shared: Server) -> None:
    before = state(shared)
    with shared.client() as http:
        r = http.post("/v1/payments", json=GOOD, headers={"Idempotency-Key": "k" * 256})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "Idempotency-Key"
    assert state(shared) == before


@pytest.mark.parametrize("auth", [None, "Bearer nope", "Basic abc", "Bearer pmk_"])
def test_missing_or_unknown_keys_are_401(shared: Server, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = httpx.post(shared.base + "/v1/payments", json=GOOD, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


def test_unknown_ids_are_404(shared: Server) -> None:
    with shared.client() as http:
        for path in [
            "/v1/payments/pay_nope",
            "/v1/refunds/re_nope",
            "/v1/payments/pay_nope/events",
        ]:
            r = http.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"]["code"] == "resource_missing"
        r = http.post("/v1/payments/pay_nope/capture", json={})
        assert r.status_code == 404


def test_a_query_parameter_given_twice_is_400_naming_it(shared: Server) -> None:
    # Found by schemathesis: `limit=<junk>&limit=8` listed events, the route reading the last.
    with shared.client() as http:
        for path, query in [
            ("/v1/events", "limit=abc&limit=8"),
            ("/v1/payments", "limit=5&limit=5"),
            ("/v1/payments", "status=succeeded&customer_id=c&status=failed"),
        ]:
            r = http.get(f"{path}?{query}")
            assert r.status_code == 400, (path, query)
            error = r.json()["error"]
            assert (error["type"], error["code"]) == ("invalid_request_error", "parameter_invalid")
            assert error["param"] == query.split("=")[0]
        assert http.get("/v1/events?limit=8&type=payment.succeeded").status_code == 200


def test_unknown_routes_and_methods_answer_in_the_error_shape(shared: Server) -> None:
    with shared.client() as http:
        r = http.get("/v1/nothing-here")
        assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
        r = http.delete("/v1/payments")
        assert r.status_code == 405 and "error" in r.json()


def test_bad_capture_and_refund_bodies_are_400(shared: Server) -> None:
    with shared.client() as http:
        pid = http.post("/v1/payments", json={**GOOD, "capture_method": "manual"}).json()["id"]
        for path, body in [
            (f"/v1/payments/{pid}/capture", {"amount": "all"}),
            (f"/v1/payments/{pid}/capture", {"amount": 0}),
            (f"/v1/payments/{pid}/refunds", {"amount": -1}),
            (f"/v1/payments/{pid}/refunds", {"amount": 1, "extra": 1}),
            (f"/v1/payments/{pid}/cancel", {"cancellation_reason": "x"}),
        ]:
            r = http.post(path, json=body)
            assert r.status_code == 400, (path, body)
        assert http.get(f"/v1/payments/{pid}").json()["status"] == "requires_capture"


def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    for server in start(tmp_path, rate_limit=2.0):
        with server.client() as http:
            codes = [http.get("/v1/payments").status_code for _ in range(6)]
            assert codes[:2] == [200, 200]
            assert 429 in codes
            limited = http.get("/v1/payments")
            assert limited.status_code == 429
            assert int(limited.headers["retry-after"]) >= 1
            assert limited.json()["error"]["type"] == "rate_limit_error"
        with server.client(server.other_key) as other:
            assert other.get("/v1/payments").status_code == 200  # limits are per key


# -- webhooks -----------------------------------------------------------------------------


def stripe_event(event_id: str, event_type: str, pi: dict[str, Any]) -> bytes:
    return msgspec.json.encode(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": pi},
        }
    )


def post_webhook(server: Server, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return httpx.post(server.base + "/webhooks/stripe", content=body, headers=headers)


def authorised_payment(server: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    """A payment held for capture, and a Stripe 'canceled' PaymentIntent that names it."""
    with server.client() as http:
        p = http.post("/v1/payments", json={**GOOD, "capture_method": "manual"}).json()
    # As Stripe sends it: with its amount and currency, which a webhook must match to apply.
    pi = {
        "id": p["connector_payment_id"],
        "object": "payment_intent",
        "status": "canceled",
        "amount": p["amount"],
        "currency": p["currency"],
        "metadata": {"paymesh_payment_id": p["id"]},
    }
    return p, pi


def test_webhooks_with_bad_signatures_are_400_and_change_nothing(shared: Server) -> None:
    p, pi = authorised_payment(shared)
    body = stripe_event("evt_forged", "payment_intent.canceled", pi)
    secret = shared.settings.stripe_webhook_secret
    assert secret is not None
    now = int(time.time())
    for signature in [
        None,
        "garbage",
        sign(body, "whsec_wrong", now),
        sign(body, secret, now - 301),
        sign(body + b" ", secret, now),
    ]:
        r = post_webhook(shared, body, signature)
        assert r.status_code == 400, signature
        assert r.json()["error"]["code"] == "webhook_signature_invalid"
    with shared.client() as http:
        assert http.get(f"/v1/payments/{p['id']}").json()["status"] == "requires_capture"


def test_a_webhook_twice_is_applied_once_and_late_ones_never_move_back(shared: Server) -> None:
    p, pi = authorised_payment(shared)
    body = stripe_event("evt_cancel_1", "payment_intent.canceled", pi)
    secret = shared.settings.stripe_webhook_secret
    assert secret is not None
    first = post_webhook(shared, body, sign(body, secret, int(time.time())))
    second = post_webhook(shared, body, sign(body, secret, int(time.time())))
    assert first.json()["results"] == ["applied"]
    assert second.json()["results"] == ["duplicate"]
    late = stripe_event(
        "evt_late", "payment_intent.amount_capturable_updated", {**pi, "status": "requires_capture"}
    )
    assert post_webhook(shared, late, sign(late, secret, int(time.time()))).status_code == 200
    with shared.client() as http:
        assert http.get(f"/v1/payments/{p['id']}").json()["status"] == "canceled"
        timeline = [
            e["detail-type"] for e in http.get(f"/v1/payments/{p['id']}/events").json()["data"]
        ]
        assert timeline.count("payment.canceled") == 1


def test_an_unreachable_psp_is_503_and_nothing_is_charged(tmp_path: Path) -> None:
    from tests.support.live_server import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    # Every PSP that could take it is down: after failing over through all three, 503.
    for server in start(tmp_path, stripe_api_base=dead, adyen_api_base=dead, paypal_api_base=dead):
        with server.client() as http:
            r = http.post("/v1/payments", json=GOOD, headers={"Idempotency-Key": "k-503"})
            assert r.status_code == 503
            error = r.json()["error"]
            assert (error["type"], error["code"]) == ("api_error", "psp_unavailable")
            payment = http.get(f"/v1/payments/{error['payment_id']}").json()
            assert payment["status"] == "failed"
            assert payment["failure"]["retryable"] is True
            assert payment["connector_payment_id"] is None
            tried = [a["connector"] for a in payment["routing"]["attempts"]]
            assert tried == ["stripe", "adyen"]  # and paypal, the last, failed it
