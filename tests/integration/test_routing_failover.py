"""Routing between PSPs and failover, against the three sandboxes over real HTTP.

Every test ends with the audit that matters: for each payment, exactly one charge across the
sandboxes' own ledgers (`GET /sandbox/{psp}/_ledger`), and it is at the PSP paymesh names.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests.integration.conftest import Server, start

PSPS = ("stripe", "adyen", "paypal")
CLEAN = {
    "error_rate": 0.0,
    "rate_limit_rate": 0.0,
    "timeout_rate": 0.0,
    "latency_ms": 0,
    "webhook_duplicate_rate": 0.0,
    "webhook_reorder": False,
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from start(tmp_path, recovery_interval=0.3, recovery_grace=0.5, psp_timeout=0.5)


def faults(server: Server, psp: str, **config: Any) -> None:
    r = httpx.put(f"{server.sandbox_url}/sandbox/{psp}/_config", json={**CLEAN, **config})
    assert r.status_code == 200, r.text


def ledger(server: Server, psp: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.sandbox_url}/sandbox/{psp}/_ledger")
    assert r.status_code == 200, r.text
    return cast(list[dict[str, Any]], r.json()["payments"])


def charges(server: Server) -> dict[str, list[tuple[str, int]]]:
    """payment id -> [(psp, amount captured)] for every charged row in every sandbox."""
    found: dict[str, list[tuple[str, int]]] = {}
    for psp in PSPS:
        for row in ledger(server, psp):
            if row["charged"]:
                found.setdefault(row["reference"], []).append((psp, row["amount_captured"]))
    return found


def pay(c: httpx.Client, amount: int = 2500, **extra: Any) -> httpx.Response:
    body = {
        "amount": amount,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "customer_id": f"cus_{uuid.uuid4().hex[:8]}",
        **extra,
    }
    return c.post("/v1/payments", json=body, headers={"Idempotency-Key": str(uuid.uuid4())})


def settle(c: httpx.Client, ids: list[str], within: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        payments = [c.get(f"/v1/payments/{pid}").json() for pid in ids]
        if (
            all(p["status"] not in ("pending", "processing") for p in payments)
            or time.monotonic() > deadline
        ):
            return payments
        time.sleep(0.1)


def test_a_stripe_that_refuses_every_call_sends_payments_to_adyen(server: Server) -> None:
    faults(server, "stripe", rate_limit_rate=1.0)  # 429: Stripe provably did nothing
    with server.client() as c:
        replies = [pay(c, 1000 + i) for i in range(4)]
        assert [r.status_code for r in replies] == [201] * 4
        payments = [r.json() for r in replies]
        assert {(p["status"], p["connector"]) for p in payments} == {("succeeded", "adyen")}
        assert payments[0]["routing"]["route"] == "default"
        assert payments[0]["routing"]["attempts"][0]["connector"] == "stripe"
        events = c.get(f"/v1/payments/{payments[0]['id']}/events").json()["data"]
        failover = [e["detail"] for e in events if e["detail-type"] == "payment.failover"]
        assert failover[0]["from_connector"] == "stripe"
        assert failover[0]["to_connector"] == "adyen"
    audit = charges(server)
    for i, p in enumerate(payments):
        assert audit[p["id"]] == [("adyen", 1000 + i)]


def test_a_stripe_answering_5xx_is_never_abandoned_before_it_is_known(server: Server) -> None:
    """A 5xx may hide a charge, so those payments wait for Stripe (recovery, same key); the
    circuit opens after a few and later payments go straight to Adyen. One charge each."""
    faults(server, "stripe", error_rate=1.0)
    with server.client() as c:
        payments = [pay(c, 2000 + i).json() for i in range(6)]
        waiting = [p for p in payments if p["status"] == "pending"]
        moved = [p for p in payments if p["connector"] == "adyen"]
        assert waiting and all(p["connector"] == "stripe" for p in waiting)
        assert moved and all(p["status"] == "succeeded" for p in moved)
        assert all(p["routing"]["attempts"] == [] for p in moved)  # routed, not failed over
        circuits = c.get("/v1/routing").json()["circuits"]
        assert circuits["stripe"] in ("open", "half_open")
        faults(server, "stripe")  # Stripe is back: recovery asks again with the same keys
        final = settle(c, [p["id"] for p in payments])
    assert [p["status"] for p in final] == ["succeeded"] * 6
    audit = charges(server)
    for p in final:
        assert audit[p["id"]] == [(p["connector"], p["amount"])]


def test_a_stripe_timing_out_after_accepting_charges_each_payment_once(server: Server) -> None:
    faults(server, "stripe", timeout_rate=1.0, timeout_hold_ms=1500)
    with server.client() as c:
        payments = [pay(c, 3000 + i).json() for i in range(3)]
        assert all(p["status"] in ("pending", "succeeded") for p in payments)
        faults(server, "stripe")
        final = settle(c, [p["id"] for p in payments])
    assert [p["status"] for p in final] == ["succeeded"] * 3
    audit = charges(server)
    for p in final:
        assert audit[p["id"]] == [(p["connector"], p["amount"])]


def test_a_routing_table_picks_the_psp_and_a_bad_one_is_refused(server: Server) -> None:
    table = {
        "routes": [
            {"name": "eur-adyen", "currency": ["eur"], "connectors": ["adyen"]},
            {"name": "big", "amount_gte": 50_000, "connectors": ["paypal", "stripe"]},
        ],
        "default": ["stripe"],
    }
    with server.client() as c:
        assert c.put("/v1/routing", json=table).status_code == 200
        assert c.get("/v1/routing").json()["table"] == table
        eur = pay(c, 1200, currency="eur").json()
        big = pay(c, 60_000).json()
        small = pay(c, 1300).json()
        forced = pay(c, 1400, connector="paypal").json()
        assert [(p["connector"], p["status"]) for p in (eur, big, small, forced)] == [
            ("adyen", "succeeded"),
            ("paypal", "succeeded"),
            ("stripe", "succeeded"),
            ("paypal", "succeeded"),
        ]
        assert (eur["routing"]["route"], forced["routing"]["route"]) == ("eur-adyen", "explicit")
        bad = c.put("/v1/routing", json={"routes": [{"connectors": ["worldpay"]}]})
        assert bad.status_code == 400
        assert "worldpay" in bad.json()["error"]["message"]
        assert c.get("/v1/routing").json()["table"] == table  # unchanged
        with server.client(server.other_key) as other:  # tables are per merchant
            assert other.get("/v1/routing").json()["table"]["routes"] == []
    audit = charges(server)
    assert audit[eur["id"]] == [("adyen", 1200)]
    assert audit[big["id"]] == [("paypal", 60_000)]


def test_a_soft_decline_is_retried_on_the_next_psp_when_the_route_says_so(server: Server) -> None:
    table = {
        "routes": [{"name": "soft", "connectors": ["stripe", "adyen"], "retry_soft_declines": True}]
    }
    with server.client() as c:
        assert c.put("/v1/routing", json=table).status_code == 200
        # processing_error is a soft (retryable) decline in the shared test vault.
        r = pay(c, 1700, payment_method="pm_card_chargeDeclinedProcessingError")
        payment = r.json() if r.status_code == 201 else r.json()["error"]["payment"]
        assert payment["routing"]["attempts"][0]["connector"] == "stripe"
        assert "soft decline" in payment["routing"]["attempts"][0]["reason"]
        assert payment["connector"] == "adyen"
        hard = pay(c, 1800, payment_method="pm_card_chargeDeclinedInsufficientFunds")
        assert hard.status_code == 402
        assert hard.json()["error"]["payment"]["routing"]["attempts"] == []


@pytest.mark.parametrize("psp", PSPS)
def test_duplicated_and_reordered_webhooks_leave_every_payment_in_its_true_state(
    server: Server, psp: str
) -> None:
    faults(server, psp, webhook_duplicate_rate=1.0, webhook_reorder=True)
    with server.client() as c:
        paid = pay(c, 4000, connector=psp).json()
        manual = pay(c, 5000, connector=psp, capture_method="manual").json()
        declined = pay(c, 600, connector=psp, payment_method="pm_card_chargeDeclined")
        assert declined.status_code == 402
        refund = c.post(f"/v1/payments/{paid['id']}/refunds", json={"amount": 1500})
        assert refund.status_code == 201
        cap = c.post(f"/v1/payments/{manual['id']}/capture", json={"amount": 3000})
        assert cap.status_code == 200
        deadline = time.monotonic() + 10
        while (final_paid := c.get(f"/v1/payments/{paid['id']}").json())[
            "status"
        ] != "partially_refunded" and time.monotonic() < deadline:
            time.sleep(0.1)
        # The webhooks of all this arrive late, twice and out of order (batches shuffled
        # within 50 ms, each copy retried). Watched at every look while they land: nothing
        # ever moves a payment back from its true state.
        declined_id = declined.json()["error"]["payment_id"]
        until = time.monotonic() + 1.5
        while True:
            final_manual = c.get(f"/v1/payments/{manual['id']}").json()
            final_declined = c.get(f"/v1/payments/{declined_id}").json()
            assert (final_manual["status"], final_manual["amount_captured"]) == ("succeeded", 3000)
            assert final_declined["status"] == "failed"
            if time.monotonic() > until:
                break
            time.sleep(0.05)
        final_paid = c.get(f"/v1/payments/{paid['id']}").json()
    assert (final_paid["status"], final_paid["amount_captured"], final_paid["amount_refunded"]) == (
        "partially_refunded",
        4000,
        1500,
    )
    assert final_paid["refunds"][0]["status"] == "succeeded"
    assert (final_manual["status"], final_manual["amount_captured"]) == ("succeeded", 3000)
    assert final_declined["status"] == "failed"
    rows = {r["reference"]: r for r in ledger(server, psp)}
    assert (rows[paid["id"]]["amount_captured"], rows[paid["id"]]["amount_refunded"]) == (
        4000,
        1500,
    )
    assert rows[manual["id"]]["amount_captured"] == 3000
    assert not rows[final_declined["id"]]["charged"]


def test_a_paypal_wallet_payment_is_captured_once_the_buyer_approves(tmp_path: Path) -> None:
    # Default recovery (every 30 s, 90 s grace): only the webhook path can be this quick.
    servers = start(tmp_path)
    server = next(servers)
    time.sleep(1.0)  # past the recovery pass a server makes at start
    with server.client() as c:
        r = pay(c, 2900, payment_method="paypal", connector="paypal")
        assert r.status_code == 201
        payment = r.json()
        assert payment["status"] == "requires_action"
        link = payment["next_action"]["redirect_url"]
        approved = httpx.get(link, follow_redirects=False)  # the buyer logs in and approves
        assert approved.status_code in (200, 302)
        # PayPal says "approved"; paymesh captures at once, not at the next recovery pass.
        final = settle(c, [payment["id"]], within=5)[0]
        deadline = time.monotonic() + 5
        while final["status"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.1)
            final = c.get(f"/v1/payments/{payment['id']}").json()
    assert (final["status"], final["amount_captured"]) == ("succeeded", 2900)
    assert charges(server)[payment["id"]] == [("paypal", 2900)]
    servers.close()


def test_a_refund_the_psp_did_not_answer_is_asked_again_never_doubled(server: Server) -> None:
    with server.client() as c:
        paid = pay(c, 5000, connector="stripe").json()
        faults(server, "stripe", error_rate=1.0)
        key = {"Idempotency-Key": f"refund-{paid['id']}"}
        first = c.post(f"/v1/payments/{paid['id']}/refunds", json={"amount": 2000}, headers=key)
        assert first.status_code == 201 and first.json()["status"] == "pending"
        faults(server, "stripe")
        # The pending answer was not kept: the same key asks Stripe again, same refund.
        again = c.post(f"/v1/payments/{paid['id']}/refunds", json={"amount": 2000}, headers=key)
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["status"] == "succeeded"
        # A refund nobody retries is settled by recovery.
        faults(server, "stripe", error_rate=1.0)
        lone = c.post(f"/v1/payments/{paid['id']}/refunds", json={"amount": 1000}).json()
        assert lone["status"] == "pending"
        faults(server, "stripe")
        deadline = time.monotonic() + 10
        while (
            c.get(f"/v1/refunds/{lone['id']}").json()["status"] == "pending"
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        final = c.get(f"/v1/payments/{paid['id']}").json()
    assert (final["status"], final["amount_refunded"]) == ("partially_refunded", 3000)
    rows = {r["reference"]: r for r in ledger(server, "stripe")}
    assert rows[paid["id"]]["amount_refunded"] == 3000


def test_a_repeated_cancel_under_a_new_key_answers_the_canceled_payment(server: Server) -> None:
    with server.client() as c:
        p = pay(c, 1500, capture_method="manual", connector="stripe").json()
        one = c.post(f"/v1/payments/{p['id']}/cancel", headers={"Idempotency-Key": "c1"})
        two = c.post(f"/v1/payments/{p['id']}/cancel", headers={"Idempotency-Key": "c2"})
        assert (one.status_code, two.status_code) == (200, 200)
        assert two.json()["status"] == "canceled"
        replay = c.post(f"/v1/payments/{p['id']}/cancel", headers={"Idempotency-Key": "c2"})
        assert replay.headers.get("idempotent-replayed") == "true"


def test_adyen_is_answered_with_its_own_acknowledgement(server: Server) -> None:
    from paymesh.connectors.adyen.webhook import sign

    item: dict[str, Any]  # nested, and changed in place below
    item = {
        "pspReference": "ZZZZZZZZZZZZZZZZ",
        "merchantAccountCode": "PaymeshSandbox",
        "merchantReference": "pay_unknown",
        "eventCode": "AUTHORISATION",
        "success": "true",
        "amount": {"value": 100, "currency": "EUR"},
        "eventDate": "2026-11-25T00:00:00+01:00",
        "additionalData": {},
    }
    assert server.settings.adyen_hmac_key is not None  # the sandbox's own key
    item["additionalData"]["hmacSignature"] = sign(
        item, bytes.fromhex(server.settings.adyen_hmac_key)
    )
    body = {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
    ok = httpx.post(f"{server.base}/webhooks/adyen", json=body)
    assert (ok.status_code, ok.content) == (200, b"[accepted]")
    item["amount"]["value"] = 101  # tampered after signing
    assert httpx.post(f"{server.base}/webhooks/adyen", json=body).status_code == 400
    stripe_like = httpx.post(f"{server.base}/webhooks/stripe", content=b"{}")
    assert stripe_like.status_code == 400
