"""Fraud in the payment path, end to end: block, hold for review, approve/reject, alerts from
the stream, decline feedback, and learned features surviving a restart.

The server runs the real fraud engine (the packaged model and the default rules) plus two
overriding test rules keyed on amount, so a test can ask for a `review` (score 75) or a
`block` (95) on purpose: an overriding rule's weight is a floor under the model's score.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest

from tests.integration.conftest import Server, start

T = TypeVar("T")

REVIEW_AMOUNT = 77_700
BLOCK_AMOUNT = 88_800


@pytest.fixture
def fraud_server(tmp_path: Path) -> Iterator[Server]:
    rules = json.loads(
        resources.files("paymesh.fraud").joinpath("default_fraud_rules.json").read_text()
    )
    rules["rules"] += [
        {
            "name": "test: review this amount",
            "factor": "test_review",
            "weight": 75,
            "override": True,  # a hard rule: beside the learned model, it still decides
            "when": ["amount", "==", REVIEW_AMOUNT],
        },
        {
            "name": "test: block this amount",
            "factor": "test_block",
            "weight": 95,
            "override": True,
            "when": ["amount", "==", BLOCK_AMOUNT],
        },
    ]
    path = tmp_path / "fraud-rules.json"
    path.write_text(json.dumps(rules))
    yield from start(tmp_path / "data", fraud_rules=path)


def pay(
    client: httpx.Client,
    amount: int,
    method: str = "pm_card_visa",
    customer: str | None = None,
    **extra: Any,
) -> httpx.Response:
    body = {
        "amount": amount,
        "currency": "usd",
        "payment_method": method,
        "customer_id": customer or f"cus_{uuid.uuid4().hex[:8]}",
        **extra,
    }
    return client.post("/v1/payments", json=body)


def wait_for(fetch: Callable[[], T], ready: Callable[[T], object], within: float = 10.0) -> T:
    deadline = time.monotonic() + within
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def event_types(client: httpx.Client, payment_id: str) -> list[str]:
    events = client.get(f"/v1/payments/{payment_id}/events").json()["data"]
    return [e["detail-type"] for e in events]


def test_a_blocked_payment_never_reaches_the_psp(fraud_server: Server) -> None:
    with fraud_server.client() as c, fraud_server.sandbox() as psp:
        before = len(psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"])
        r = pay(c, BLOCK_AMOUNT)
        assert r.status_code == 402
        error = r.json()["error"]
        assert (error["type"], error["code"]) == ("fraud_error", "payment_blocked")
        payment = c.get(f"/v1/payments/{error['payment_id']}").json()
        assert payment["status"] == "blocked"
        assert payment["connector_payment_id"] is None
        assert payment["fraud"]["decision"] == "block"
        assert "test_block" in payment["fraud"]["factors"]
        after = len(psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"])
        assert after == before
        # (its fraud.alert may join the timeline a moment later: it comes from the stream)
        assert [t for t in event_types(c, payment["id"]) if t.startswith("payment.")] == [
            "payment.initiated",
            "payment.blocked",
        ]


def test_a_review_holds_the_capture_and_approval_captures_once(fraud_server: Server) -> None:
    with fraud_server.client() as c, fraud_server.sandbox() as psp:
        r = pay(c, REVIEW_AMOUNT)
        assert r.status_code == 201
        payment = r.json()
        assert payment["status"] == "requires_capture"
        assert payment["capture_method"] == "automatic"  # as asked; the hold is the review's
        assert payment["fraud"]["decision"] == "review"
        review = payment["review"]
        assert review["status"] == "open" and review["id"].startswith("rev_")

        queue = c.get("/v1/reviews", params={"status": "open"}).json()
        assert [q["id"] for q in queue["data"]] == [review["id"]]
        assert queue["data"][0]["payment_id"] == payment["id"]

        held = c.post(f"/v1/payments/{payment['id']}/capture")
        assert held.status_code == 409

        approved = c.post(f"/v1/reviews/{review['id']}/approve")
        assert approved.status_code == 200
        assert approved.json()["status"] == "approved"
        again = c.post(f"/v1/reviews/{review['id']}/approve")
        assert again.status_code == 200 and again.json()["status"] == "approved"

        final = c.get(f"/v1/payments/{payment['id']}").json()
        assert (final["status"], final["amount_captured"]) == ("succeeded", REVIEW_AMOUNT)
        intent = psp.get(f"/v1/payment_intents/{final['connector_payment_id']}").json()
        assert (intent["status"], intent["amount_received"]) == ("succeeded", REVIEW_AMOUNT)
        assert intent["capture_method"] == "manual"

        types = event_types(c, payment["id"])
        assert types.count("review.opened") == 1 and types.count("review.approved") == 1
        assert types.count("payment.succeeded") == 1
        assert c.get("/v1/reviews", params={"status": "open"}).json()["data"] == []
        rejected_late = c.post(f"/v1/reviews/{review['id']}/reject")
        assert rejected_late.status_code == 409


def test_rejecting_a_review_voids_the_authorisation(fraud_server: Server) -> None:
    with fraud_server.client() as c, fraud_server.sandbox() as psp:
        payment = pay(c, REVIEW_AMOUNT).json()
        review_id = payment["review"]["id"]
        too_long = c.post(f"/v1/reviews/{review_id}/reject", json={"note": "x" * 501})
        assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "note"
        rejected = c.post(f"/v1/reviews/{review_id}/reject", json={"note": "card testing"})
        assert rejected.status_code == 200
        assert (rejected.json()["status"], rejected.json()["note"]) == ("rejected", "card testing")
        assert c.post(f"/v1/reviews/{review_id}/reject").json()["status"] == "rejected"
        assert c.post(f"/v1/reviews/{review_id}/approve").status_code == 409
        final = c.get(f"/v1/payments/{payment['id']}").json()
        assert (final["status"], final["amount_captured"]) == ("canceled", 0)
        intent = psp.get(f"/v1/payment_intents/{final['connector_payment_id']}").json()
        assert intent["status"] == "canceled"
        types = event_types(c, payment["id"])
        assert "review.rejected" in types and "payment.canceled" in types
        decided = [
            e["detail"]
            for e in c.get(f"/v1/payments/{payment['id']}/events").json()["data"]
            if e["detail-type"] == "review.rejected"
        ]
        assert decided[0]["note"] == "card testing"
        assert "payment.succeeded" not in types


def test_review_routes_refuse_what_they_do_not_know(fraud_server: Server) -> None:
    with fraud_server.client() as c:
        assert c.post("/v1/reviews/rev_nope/approve").status_code == 404
        assert c.post("/v1/reviews/pay_123/approve").status_code == 404
        assert c.get("/v1/reviews", params={"status": "maybe"}).status_code == 400
        payment = pay(c, REVIEW_AMOUNT).json()
        bad = c.post(f"/v1/reviews/{payment['review']['id']}/approve", json={"amount": 1})
        assert bad.status_code == 400
        with fraud_server.client(fraud_server.other_key) as other:
            assert other.post(f"/v1/reviews/{payment['review']['id']}/approve").status_code == 404


def test_a_high_score_raises_a_fraud_alert_event(fraud_server: Server) -> None:
    with fraud_server.client() as c:
        payment = pay(c, REVIEW_AMOUNT).json()

        def alerts() -> list[dict[str, Any]]:
            params: dict[str, str | int] = {"type": "fraud.alert", "limit": 100}
            data = c.get("/v1/events", params=params).json()["data"]
            return [a for a in data if a["detail"]["payment_id"] == payment["id"]]

        found = wait_for(alerts, bool)
        assert len(found) == 1
        alert = found[0]
        assert alert["source"] == "fraud.service"
        assert alert["detail"]["fraud_score"] >= 70
        assert "test_review" in alert["detail"]["fraud_factors"]


def test_declines_fed_back_from_the_stream_raise_the_card_testing_score(
    fraud_server: Server,
) -> None:
    card = "pm_card_chargeDeclined"
    with fraud_server.client() as c:
        first = pay(c, 100, method=card, customer="cus_probe")
        assert first.status_code == 402
        assert "card_testing" not in first.json()["error"]["payment"]["fraud"]["factors"]
        for _ in range(3):
            pay(c, 100, method=card, customer="cus_probe")

        def probe() -> dict[str, Any]:
            time.sleep(0.3)  # let the stream tell the features about the declines
            declined = pay(c, 100, method=card, customer="cus_probe").json()
            return cast(dict[str, Any], declined["error"]["payment"])

        later = wait_for(probe, lambda p: "card_testing" in p["fraud"]["factors"])
        assert "card_testing" in later["fraud"]["factors"]


def test_learned_features_survive_a_restart(tmp_path: Path) -> None:
    customer = "cus_returning"
    with_device = {"device_id": "dev-phone-1", "country": "FR"}
    servers = start(tmp_path, fraud_model="none")  # the rules' factors name the features
    server = next(servers)
    other_device = {"device_id": "dev-laptop-2", "country": "FR"}
    with server.client() as c:
        # A first payment teaches the customer; only then is a device "unknown" for them.
        assert pay(c, 1500, customer=customer, **with_device).json()["fraud"]["factors"] == []
        known = pay(c, 1500, customer=customer, **with_device).json()
        assert "unknown_device" not in known["fraud"]["factors"]
    servers.close()  # a clean stop: the features are checkpointed

    servers = start(tmp_path)
    server = next(servers)
    try:
        with server.client() as c:
            after = pay(c, 1500, customer=customer, **with_device).json()
            assert "unknown_device" not in after["fraud"]["factors"]
            # Had the customer been forgotten, a new device would score nothing at all.
            new = pay(c, 1500, customer=customer, **other_device).json()
            assert "unknown_device" in new["fraud"]["factors"]
    finally:
        servers.close()
