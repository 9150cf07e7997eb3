"""Disputes end to end (issue 17, item 2): each PSP's sandbox opens a dispute on a captured
payment and closes it won or lost, in its own signed webhooks, over real HTTP to paymesh; the
ledger books the withdrawal and, for a won dispute, the reversal; `GET /v1/disputes` shows
them; a dispute raises a fraud alert.

Every sandbox here delivers each webhook twice (`webhook_duplicate_rate` 1), as PSPs do
when an acknowledgement is lost: the second delivery of a verdict must change nothing.

The dispute card is used over and over here, and disputes feed the fraud engine: by the
fifth, its payments would be held for review, never captured, never disputed. The test
customer is on the default rules' allow list, so every payment is captured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, TypeVar

import httpx
import msgspec
import pytest

from paymesh.connectors.stripe.webhook import sign as stripe_sign
from tests.integration.conftest import Server, start

T = TypeVar("T")
PSPS = ("stripe", "adyen", "paypal")
DISPUTE_FEES = {"stripe": 1_500, "adyen": 1_000, "paypal": 2_000}


CUSTOMER = "cus_trusted"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    here = tmp_path_factory.mktemp("disputes")
    rules = json.loads(
        resources.files("paymesh.fraud").joinpath("default_fraud_rules.json").read_text()
    )
    rules["lists"]["allow"] = {"customer_id": [CUSTOMER]}
    (here / "fraud-rules.json").write_text(json.dumps(rules))
    for server in start(here / "data", fraud_rules=here / "fraud-rules.json"):
        for psp in PSPS:
            r = httpx.put(
                f"{server.sandbox_url}/sandbox/{psp}/_config",
                json={"webhook_duplicate_rate": 1.0},
            )
            assert r.status_code == 200, r.text
        yield server


def wait_for(probe: Callable[[], T], done: Callable[[T], bool], seconds: float = 20) -> T:
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def accounts(c: httpx.Client) -> dict[str, int]:
    b = c.get("/v1/balance").json()
    return {a["account"]: a["balance"] for a in b["accounts"] if a["currency"] == "usd"}


def disputed_payment(c: httpx.Client, psp: str, amount: int) -> tuple[dict[str, Any], str]:
    """A payment captured at `psp` with the dispute card, once its dispute is applied; and
    the id paymesh gives the dispute."""
    r = c.post(
        "/v1/payments",
        json={
            "amount": amount,
            "currency": "usd",
            "customer_id": CUSTOMER,
            "payment_method": "pm_card_createDispute",
            "connector": psp,
        },
    )
    assert r.status_code in (200, 201), r.text
    payment = r.json()
    dispute_id = "dsp_" + payment["id"].removeprefix("pay_")
    found = wait_for(lambda: c.get(f"/v1/disputes/{dispute_id}"), lambda r: r.status_code == 200)
    assert found.status_code == 200, f"{psp}: the dispute webhook never applied: {found.text}"
    return payment, dispute_id


def close_at_psp(shop: Server, psp: str, connector_dispute_id: str, outcome: str) -> int:
    r = httpx.post(
        f"{shop.sandbox_url}/sandbox/{psp}/_disputes/{connector_dispute_id}/close",
        json={"outcome": outcome},
    )
    return r.status_code


def events_of(c: httpx.Client, payment_id: str, kind: str) -> list[dict[str, Any]]:
    data = c.get(f"/v1/payments/{payment_id}/events").json()["data"]
    return [e for e in data if e["detail-type"] == kind]


@pytest.mark.parametrize("psp", PSPS)
def test_a_won_dispute_brings_the_funds_back_and_keeps_the_fee(shop: Server, psp: str) -> None:
    with shop.client() as c:
        payment, dispute_id = disputed_payment(c, psp, 4_000)
        dispute = c.get(f"/v1/disputes/{dispute_id}").json()
        assert (dispute["status"], dispute["amount"], dispute["payment_id"]) == (
            "needs_response",
            4_000,
            payment["id"],
        )
        assert c.get(f"/v1/payments/{payment['id']}").json()["status"] == "disputed"
        before = accounts(c)

        assert close_at_psp(shop, psp, dispute["connector_dispute_id"], "won") == 200
        won = wait_for(
            lambda: c.get(f"/v1/disputes/{dispute_id}").json(), lambda d: d["status"] == "won"
        )
        assert won["status"] == "won" and won["closed"] is not None
        assert c.get(f"/v1/payments/{payment['id']}").json()["status"] == "succeeded"
        after = accounts(c)
        assert after["disputes"] == before["disputes"] - 4_000  # the funds are back
        assert after["psp_receivable"] == before["psp_receivable"] + 4_000
        assert after["dispute_fees"] == before["dispute_fees"]  # the fee is not
        assert sum(after.values()) == 0

        # The PSP's second delivery of the verdict, and the bank asked again, change nothing.
        time.sleep(0.5)
        assert close_at_psp(shop, psp, dispute["connector_dispute_id"], "lost") == 409
        [closed] = events_of(c, payment["id"], "payment.dispute.closed")
        assert closed["detail"]["outcome"] == "won"
        assert accounts(c) == after
        moves = c.get("/v1/balance_transactions", params={"payment_id": payment["id"]}).json()
        assert [(m["type"], m["amount"], m["fee"]) for m in moves["data"]][:2] == [
            ("dispute_reversal", 4_000, 0),
            ("dispute", -4_000, DISPUTE_FEES[psp]),
        ]


@pytest.mark.parametrize("psp", PSPS)
def test_a_lost_dispute_stays_disputed_and_moves_no_more_money(shop: Server, psp: str) -> None:
    with shop.client() as c:
        payment, dispute_id = disputed_payment(c, psp, 2_600)
        connector_dispute_id = c.get(f"/v1/disputes/{dispute_id}").json()["connector_dispute_id"]
        before = accounts(c)
        assert close_at_psp(shop, psp, connector_dispute_id, "lost") == 200
        lost = wait_for(
            lambda: c.get(f"/v1/disputes/{dispute_id}").json(), lambda d: d["status"] == "lost"
        )
        assert lost["status"] == "lost"
        time.sleep(0.5)  # the duplicate delivery
        assert c.get(f"/v1/payments/{payment['id']}").json()["status"] == "disputed"
        assert accounts(c) == before
        [closed] = events_of(c, payment["id"], "payment.dispute.closed")
        assert (closed["detail"]["outcome"], closed["detail"]["dispute_id"]) == ("lost", dispute_id)
        # Lost is final: no refund of money the customer already has back.
        refund = c.post(f"/v1/payments/{payment['id']}/refunds", json={})
        assert refund.status_code == 409


def post_verdict(
    shop: Server, event_id: str, dispute: str, intent: str, amount: int, status: str = "won"
) -> httpx.Response:
    """`charge.dispute.closed`, signed as Stripe signs it, posted to paymesh."""
    body = msgspec.json.encode(
        {
            "id": event_id,
            "type": "charge.dispute.closed",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": dispute,
                    "object": "dispute",
                    "amount": amount,
                    "currency": "usd",
                    "payment_intent": intent,
                    "status": status,
                }
            },
        }
    )
    secret = shop.settings.sandbox_secrets.stripe_webhook_secret
    return httpx.post(
        f"{shop.base}/webhooks/stripe",
        content=body,
        headers={
            "Stripe-Signature": stripe_sign(body, secret, int(time.time())),
            "Content-Type": "application/json",
        },
    )


def signed_verdict(
    shop: Server, event_id: str, dispute: str, intent: str, amount: int, status: str
) -> list[str]:
    """The verdict posted and accepted: its results."""
    r = post_verdict(shop, event_id, dispute, intent, amount, status)
    assert r.status_code == 200, r.text
    results: list[str] = r.json()["results"]
    return results


def test_a_verdict_naming_another_payments_dispute_is_refused(shop: Server) -> None:
    with shop.client() as c:
        mine, mine_dispute = disputed_payment(c, "stripe", 1_100)
        theirs, theirs_dispute = disputed_payment(c, "stripe", 1_200)
        their_dp = c.get(f"/v1/disputes/{theirs_dispute}").json()["connector_dispute_id"]
        before = accounts(c)
        # My PaymentIntent, with their dispute won: Stripe's signature, not their dispute.
        assert signed_verdict(
            shop, "evt_cross", their_dp, mine["connector_payment_id"], 1_100, "won"
        ) == ["mismatch"]
        for dispute_id in (mine_dispute, theirs_dispute):
            assert c.get(f"/v1/disputes/{dispute_id}").json()["status"] == "needs_response"
        assert accounts(c) == before
        assert events_of(c, theirs["id"], "payment.dispute.closed") == []


def test_a_second_verdict_in_a_new_notification_changes_nothing(shop: Server) -> None:
    with shop.client() as c:
        payment, dispute_id = disputed_payment(c, "stripe", 1_250)
        dp = c.get(f"/v1/disputes/{dispute_id}").json()["connector_dispute_id"]
        intent = payment["connector_payment_id"]
        assert signed_verdict(shop, "evt_verdict_1", dp, intent, 1_250, "won") == ["applied"]
        decided = accounts(c)
        # Another event id, so not a duplicate delivery: the dispute is decided already.
        assert signed_verdict(shop, "evt_verdict_2", dp, intent, 1_250, "lost") == ["applied"]
        assert c.get(f"/v1/disputes/{dispute_id}").json()["status"] == "won"
        assert accounts(c) == decided
        assert len(events_of(c, payment["id"], "payment.dispute.closed")) == 1


def test_disputes_are_listed_newest_first_and_only_to_their_merchant(shop: Server) -> None:
    with shop.client() as c:
        _, older_id = disputed_payment(c, "stripe", 1_300)
        newer, newer_id = disputed_payment(c, "adyen", 1_400)
        page = c.get("/v1/disputes", params={"limit": 1}).json()
        assert (page["object"], page["url"], page["has_more"]) == ("list", "/v1/disputes", True)
        [first] = page["data"]
        assert (first["id"], first["object"], first["payment_id"]) == (
            newer_id,
            "dispute",
            newer["id"],
        )
        assert (first["amount"], first["currency"], first["connector"]) == (1_400, "usd", "adyen")
        rest = c.get("/v1/disputes", params={"starting_after": newer_id, "limit": 100}).json()
        assert rest["data"][0]["id"] == older_id
        assert newer_id not in [d["id"] for d in rest["data"]]
        assert c.get("/v1/disputes/dsp_nope").status_code == 404
        assert c.get("/v1/disputes", params={"starting_after": "dsp_nope"}).status_code == 400
    with shop.client(shop.other_key) as other:
        assert other.get("/v1/disputes").json()["data"] == []
        assert other.get(f"/v1/disputes/{older_id}").status_code == 404


def test_a_dispute_raises_a_fraud_alert(shop: Server) -> None:
    with shop.client() as c:
        payment, _ = disputed_payment(c, "paypal", 1_500)

        def alerts() -> list[dict[str, Any]]:
            params: dict[str, str | int] = {"type": "fraud.alert", "limit": 100}
            data = c.get("/v1/events", params=params).json()["data"]
            return [a for a in data if a["detail"]["payment_id"] == payment["id"]]

        found = wait_for(alerts, bool)
        assert [a["detail"]["reason"] for a in found] == ["dispute"]
        assert found[0]["source"] == "fraud.service"


def test_a_verdict_before_its_dispute_is_refused_for_redelivery_and_changes_nothing(
    shop: Server,
) -> None:
    """Webhooks come in any order: a verdict that overtakes the dispute's own notification
    is answered 409, so Stripe delivers it again once the dispute is recorded, not lost."""
    with shop.client() as c:
        r = c.post(
            "/v1/payments",
            json={
                "amount": 1_300,
                "currency": "usd",
                "customer_id": CUSTOMER,
                "payment_method": "pm_card_visa",
            },
        )
        assert r.status_code == 201, r.text
        payment = r.json()
        before = accounts(c)
        early = post_verdict(
            shop, "evt_early", "du_not_yet", payment["connector_payment_id"], 1_300
        )
        assert early.status_code == 409, early.text
        assert early.json()["error"]["code"] == "payment_not_ready"
        assert c.get(f"/v1/payments/{payment['id']}").json()["status"] == "succeeded"
        assert accounts(c) == before
        assert events_of(c, payment["id"], "payment.dispute.closed") == []
