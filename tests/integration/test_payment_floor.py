"""The floor `benchmarks/payment_floor.py` measures paymesh against must do a payment's whole
round of exchanges: a floor that skipped the webhook or the delivery would be cheaper than
what it claims to be, and would make paymesh's own logic look dearer than it is."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from benchmarks.payment_floor import floor_stack, settled


def test_each_floor_payment_is_charged_confirmed_by_webhook_and_delivered() -> None:
    with floor_stack() as stack, httpx.Client(base_url=stack.api_url, timeout=10) as client:
        answers = [
            client.post(
                "/v1/payments",
                json={
                    "amount": 1000 + n,
                    "currency": "usd",
                    "customer_id": f"cus_{n}",
                    "payment_method": "pm_card_visa",
                },
                headers={"Authorization": f"Bearer {stack.api_key}", "Idempotency-Key": f"k{n}"},
            )
            for n in range(20)
        ]
        assert [a.status_code for a in answers] == [201] * 20
        assert [a.json()["amount"] for a in answers] == [1000 + n for n in range(20)]
        assert settled(stack) == {"payments": 20, "webhooks": 20, "deliveries": 20}


def test_the_floor_refuses_a_wrong_key_and_a_forged_webhook() -> None:
    with floor_stack() as stack, httpx.Client(base_url=stack.api_url, timeout=10) as client:
        refused = client.post(
            "/v1/payments",
            json={"amount": 1, "currency": "usd", "customer_id": "c", "payment_method": "pm"},
            headers={"Authorization": "Bearer sk_wrong", "Idempotency-Key": "k"},
        )
        body = json.dumps(
            {"id": "evt_1", "type": "x", "data": {"object": {"id": "pi_1", "status": "failed"}}}
        ).encode()
        stamp = str(int(time.time()))
        forged = hmac.new(b"not-the-secret", f"{stamp}.".encode() + body, hashlib.sha256)
        webhook = client.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": f"t={stamp},v1={forged.hexdigest()}"},
        )
        assert (refused.status_code, webhook.status_code) == (401, 400)
        assert stack.counts() == {"payments": 0, "webhooks": 0, "deliveries": 0}
