"""The payments API end to end: real server, real SQLite, real HTTP to the Stripe sandbox."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from paymesh.fraud.model import FraudModel
from tests.integration.conftest import Server
from tests.support.bus_state import wait_rule_settled


def pay(
    http: httpx.Client,
    method: str = "pm_card_visa",
    amount: int = 2000,
    key: str | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {
        "amount": amount,
        "currency": "USD",
        "customer_id": "cus_1",
        "payment_method": method,
        **extra,
    }
    headers = {"Idempotency-Key": key} if key else {}
    return http.post("/v1/payments", json=body, headers=headers)


def wait_status(
    http: httpx.Client, payment_id: str, status: str, seconds: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        p: dict[str, Any] = http.get(f"/v1/payments/{payment_id}").json()
        if p["status"] == status or time.monotonic() > deadline:
            return p
        time.sleep(0.05)


def test_a_card_payment_succeeds_and_is_stored(server: Server) -> None:
    with server.client() as http:
        r = pay(http, metadata={"order_id": "o-1"}, description="2 books")
        assert r.status_code == 201
        p = r.json()
        assert p["object"] == "payment" and p["id"].startswith("pay_")
        assert (p["status"], p["amount"], p["currency"]) == ("succeeded", 2000, "usd")
        assert (p["amount_captured"], p["amount_refunded"]) == (2000, 0)
        assert p["connector"] == "stripe" and p["connector_payment_id"].startswith("pi_")
        assert p["metadata"] == {"order_id": "o-1"}
        assert p["fraud"] == {
            "score": 0,
            "factors": [],
            "decision": "allow",
            "model": FraudModel.packaged().version,  # the model paymesh serve loads by default
        }
        assert p["failure"] is None
        assert http.get(f"/v1/payments/{p['id']}").json()["status"] == "succeeded"
    with server.sandbox() as psp:
        pi = psp.get(f"/v1/payment_intents/{p['connector_payment_id']}").json()
        assert (pi["status"], pi["amount"], pi["amount_received"]) == ("succeeded", 2000, 2000)
        assert pi["metadata"]["paymesh_payment_id"] == p["id"]


def test_another_merchants_payment_is_not_found(server: Server) -> None:
    with server.client() as http:
        pid = pay(http).json()["id"]
    with server.client(server.other_key) as other:
        r = other.get(f"/v1/payments/{pid}")
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert other.post(f"/v1/payments/{pid}/refunds", json={}).status_code == 404
        assert other.get(f"/v1/payments/{pid}/events").status_code == 404


def test_a_decline_is_402_with_the_decline_code_and_the_payment_exists(server: Server) -> None:
    with server.client() as http:
        r = pay(http, "pm_card_chargeDeclinedInsufficientFunds")
        assert r.status_code == 402
        err = r.json()["error"]
        assert (err["type"], err["code"], err["decline_code"]) == (
            "card_error",
            "card_declined",
            "insufficient_funds",
        )
        p = http.get(f"/v1/payments/{err['payment_id']}").json()
        assert p["status"] == "failed"
        assert p["failure"]["retryable"] is False
        events = http.get(f"/v1/payments/{p['id']}/events").json()["data"]
        assert [e["detail-type"] for e in events] == ["payment.initiated", "payment.failed"]
        assert events[1]["detail"]["retryable"] is False


def test_a_processing_error_is_retryable(server: Server) -> None:
    with server.client() as http:
        r = pay(http, "pm_card_chargeDeclinedProcessingError")
        assert r.status_code == 402
        p = r.json()["error"]["payment"]
        assert p["failure"]["code"] == "processing_error"
        assert p["failure"]["retryable"] is True


def test_three_d_secure_then_the_webhook_completes_the_payment(server: Server) -> None:
    with server.client() as http:
        r = pay(http, "pm_card_threeDSecure2Required")
        assert r.status_code == 201
        p = r.json()
        assert p["status"] == "requires_action"
        url = p["next_action"]["redirect_url"]
        assert url.startswith(server.sandbox_url + "/sandbox/stripe/")
        assert httpx.post(url, params={"outcome": "succeed"}).status_code < 400
        done = wait_status(http, p["id"], "succeeded")
        assert done["status"] == "succeeded"
        timeline = [
            e["detail-type"] for e in http.get(f"/v1/payments/{p['id']}/events").json()["data"]
        ]
        assert timeline == ["payment.initiated", "payment.requires_action", "payment.succeeded"]


def test_manual_capture_partial_then_no_second_capture(server: Server) -> None:
    with server.client() as http:
        p = pay(http, "pm_card_mastercard", amount=5000, capture_method="manual").json()
        assert (p["status"], p["amount_captured"]) == ("requires_capture", 0)
        r = http.post(f"/v1/payments/{p['id']}/capture", json={"amount": 4000})
        assert r.status_code == 200
        assert (r.json()["status"], r.json()["amount_captured"]) == ("succeeded", 4000)
        again = http.post(f"/v1/payments/{p['id']}/capture", json={})
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "payment_unexpected_state"
        too_much = pay(http, amount=100, capture_method="manual").json()
        r = http.post(f"/v1/payments/{too_much['id']}/capture", json={"amount": 101})
        assert r.status_code == 400 and r.json()["error"]["param"] == "amount"


def test_capturing_a_failed_payment_is_409(server: Server) -> None:
    with server.client() as http:
        pid = pay(http, "pm_card_chargeDeclined").json()["error"]["payment_id"]
        r = http.post(f"/v1/payments/{pid}/capture", json={})
        assert r.status_code == 409
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_cancel_an_authorisation(server: Server) -> None:
    with server.client() as http:
        p = pay(http, capture_method="manual").json()
        r = http.post(f"/v1/payments/{p['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "canceled"
        assert http.post(f"/v1/payments/{p['id']}/cancel").json()["status"] == "canceled"
        done = pay(http).json()
        assert http.post(f"/v1/payments/{done['id']}/cancel").status_code == 409
    with server.sandbox() as psp:
        assert (
            psp.get(f"/v1/payment_intents/{p['connector_payment_id']}").json()["status"]
            == "canceled"
        )


def test_refunds_partial_then_the_rest_never_more(server: Server) -> None:
    with server.client() as http:
        p = pay(http, amount=3000).json()
        r1 = http.post(
            f"/v1/payments/{p['id']}/refunds",
            json={"amount": 1000, "reason": "requested_by_customer"},
        )
        assert r1.status_code == 201
        refund = r1.json()
        assert (refund["object"], refund["amount"], refund["status"]) == (
            "refund",
            1000,
            "succeeded",
        )
        over = http.post(f"/v1/payments/{p['id']}/refunds", json={"amount": 2001})
        assert over.status_code == 400 and over.json()["error"]["param"] == "amount"
        r2 = http.post(f"/v1/payments/{p['id']}/refunds", json={})
        assert r2.status_code == 201 and r2.json()["amount"] == 2000
        final = http.get(f"/v1/payments/{p['id']}").json()
        assert (final["status"], final["amount_refunded"]) == ("refunded", 3000)
        assert [x["amount"] for x in final["refunds"]] == [1000, 2000]
        got = http.get(f"/v1/refunds/{refund['id']}")
        assert got.status_code == 200 and got.json()["amount"] == 1000
        assert http.post(f"/v1/payments/{p['id']}/refunds", json={}).status_code == 400
    with server.client(server.other_key) as other:
        assert other.get(f"/v1/refunds/{refund['id']}").status_code == 404
    with server.sandbox() as psp:
        refunds = psp.get("/v1/refunds", params={"limit": 100}).json()["data"]
        mine = [x for x in refunds if x["payment_intent"] == p["connector_payment_id"]]
        assert sorted(x["amount"] for x in mine) == [1000, 2000]


def test_list_newest_first_with_filters_and_cursor(server: Server) -> None:
    with server.client() as http:
        ids = [pay(http, customer_id="cus_list").json()["id"] for _ in range(3)]
        declined = pay(http, "pm_card_chargeDeclined", customer_id="cus_list")
        r = http.get("/v1/payments", params={"customer_id": "cus_list", "limit": 2})
        body = r.json()
        assert body["object"] == "list" and body["has_more"] is True
        assert len(body["data"]) == 2
        assert body["data"][0]["id"] == declined.json()["error"]["payment_id"]
        rest = http.get(
            "/v1/payments",
            params={
                "customer_id": "cus_list",
                "limit": 10,
                "starting_after": body["data"][1]["id"],
            },
        ).json()
        assert [p["id"] for p in rest["data"]] == list(reversed(ids))[1:]
        failed = http.get("/v1/payments", params={"status": "failed"}).json()["data"]
        assert [p["status"] for p in failed] == ["failed"]
        for params, param in [
            ({"status": "nope"}, "status"),
            ({"limit": "0"}, "limit"),
            ({"limit": "x"}, "limit"),
            ({"created_gte": "soon"}, "created_gte"),
        ]:
            bad = http.get("/v1/payments", params=params)
            assert bad.status_code == 400 and bad.json()["error"]["param"] == param


def test_replay_returns_the_stored_response(server: Server) -> None:
    key = str(uuid.uuid4())
    with server.client() as http:
        first = pay(http, key=key, metadata={"order_id": "o-9"})
        again = pay(http, key=key, metadata={"order_id": "o-9"})
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert "idempotent-replayed" not in first.headers


def test_a_replayed_decline_is_the_same_402(server: Server) -> None:
    key = str(uuid.uuid4())
    with server.client() as http:
        first = pay(http, "pm_card_chargeDeclined", key=key)
        again = pay(http, "pm_card_chargeDeclined", key=key)
        assert (first.status_code, again.status_code) == (402, 402)
        assert again.json() == first.json()


def test_same_key_different_body_is_422_and_charges_nothing_more(server: Server) -> None:
    key = str(uuid.uuid4())
    with server.client() as http:
        pay(http, key=key)
        r = pay(http, key=key, amount=2001)
        assert r.status_code == 422
        assert r.json()["error"]["type"] == "idempotency_error"
        assert len(http.get("/v1/payments").json()["data"]) == 1


def test_the_same_key_is_separate_per_merchant(server: Server) -> None:
    key = str(uuid.uuid4())
    with server.client() as a, server.client(server.other_key) as b:
        assert pay(a, key=key).status_code == 201
        assert pay(b, key=key).status_code == 201


def test_without_a_key_the_order_id_derives_one(server: Server) -> None:
    with server.client() as http:
        first = pay(http, metadata={"order_id": "ord-derived"})
        again = pay(http, metadata={"order_id": "ord-derived"})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        other = pay(http, metadata={"order_id": "ord-other"})
        assert other.json()["id"] != first.json()["id"]


async def test_fifty_concurrent_requests_with_one_key_make_one_payment_intent(
    server: Server,
) -> None:
    key = str(uuid.uuid4())
    body = {
        "amount": 4242,
        "currency": "usd",
        "customer_id": "cus_race",
        "payment_method": "pm_card_visa",
    }
    async with httpx.AsyncClient(
        base_url=server.base,
        timeout=30,
        headers={"Authorization": f"Bearer {server.key}", "Idempotency-Key": key},
    ) as http:
        import asyncio

        answers = await asyncio.gather(*(http.post("/v1/payments", json=body) for _ in range(50)))
    statuses = sorted({a.status_code for a in answers})
    assert set(statuses) <= {200, 201, 409}
    assert sum(a.status_code == 201 for a in answers) == 1
    ids = {a.json()["id"] for a in answers if a.status_code in (200, 201)}
    assert len(ids) == 1
    assert all(
        a.json()["error"]["code"] == "idempotency_key_in_use"
        for a in answers
        if a.status_code == 409
    )
    with server.sandbox() as psp:
        intents = psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"]
        assert [pi["amount"] for pi in intents].count(4242) == 1


def test_a_confirmation_is_recorded_once_per_outcome(server: Server) -> None:
    with server.client() as http:
        p = pay(http).json()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sent = http.get(f"/v1/payments/{p['id']}/notifications").json()["data"]
            if sent:
                break
            time.sleep(0.05)
        # send_confirmation is the default rule payment-succeeded's: once the bus has no
        # delivery of it left to run, no second confirmation can still come.
        wait_rule_settled(server.settings.sqlite_path, "payment-succeeded")
        sent = http.get(f"/v1/payments/{p['id']}/notifications").json()["data"]
        # No receipt_email nor receipt_phone: nothing is sent, and that is recorded.
        assert [(n["channel"], n["template"], n["recipient"]) for n in sent] == [
            ("none", "payment_succeeded", "cus_1")
        ]
        declined = pay(http, "pm_card_chargeDeclined").json()["error"]["payment_id"]
        wait_rule_settled(server.settings.sqlite_path, "customer-confirmation")
        sent = http.get(f"/v1/payments/{declined}/notifications").json()["data"]
        assert [(n["channel"], n["template"]) for n in sent] == [("none", "payment_failed")]


def test_event_log_lists_the_merchants_events(server: Server) -> None:
    with server.client() as http:
        p = pay(http).json()
        events = http.get("/v1/events", params={"type": "payment.succeeded"}).json()["data"]
        assert [e["resources"] for e in events] == [[p["id"]]]
        e = events[0]
        assert (e["version"], e["source"], e["account"]) == ("0", "payment.service", "shop")
        assert e["detail"]["amount"] == 2000


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_operational_routes_answer_without_a_key(server: Server, path: str) -> None:
    r = httpx.get(server.base + path)
    assert r.status_code == 200
    if path == "/openapi.json":
        assert "/v1/payments" in r.json()["paths"]
