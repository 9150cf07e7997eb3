"""A claim left in flight by a crash is recovered: the retry resumes the same payment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from paymesh.adapters.sqlite import SqliteStore
from paymesh.domain.payment import FraudAssessment, Payment
from paymesh.ports.store import Changeset, IdempotencyRecord, IdempotencyWrite
from paymesh.service.payments import CreatePayment
from paymesh.service.payments.create import request_fingerprint
from tests.integration.conftest import Server

BODY = {
    "amount": 3141,
    "currency": "usd",
    "customer_id": "cus_crash",
    "payment_method": "pm_card_visa",
}


def leave_a_crashed_request(server: Server, key: str, lease_left: timedelta) -> None:
    """What a process that died between recording the payment and asking the PSP leaves."""
    now = datetime.now(UTC)
    request = CreatePayment(
        amount=3141, currency="usd", customer_id="cus_crash", payment_method="pm_card_visa"
    )
    record = IdempotencyRecord(
        merchant_id="shop",
        key=key,
        fingerprint=request_fingerprint(request),
        resource_id="pay_crashed",
        lease_token="dead-process",
        locked_until=now + lease_left,
        expires_at=now + timedelta(hours=24),
    )
    payment = Payment.initiate(
        now=now - timedelta(minutes=2),
        fraud=FraudAssessment(0, (), "allow"),
        id="pay_crashed",
        merchant_id="shop",
        amount=3141,
        currency="usd",
        customer_id="cus_crash",
        payment_method="pm_card_visa",
        capture_method="automatic",
        connector="stripe",
    )

    async def write() -> None:
        store = SqliteStore(server.settings.sqlite_path)
        await store.open()
        changes = Changeset(idempotency=IdempotencyWrite(record, now))
        changes.save(payment)
        await store.commit(changes)
        await store.close()

    asyncio.run(write())


def test_a_retry_after_the_lease_resumes_the_same_payment_once(server: Server) -> None:
    leave_a_crashed_request(server, "key-of-the-dead", lease_left=timedelta(seconds=-1))
    with server.client() as http:
        r = http.post("/v1/payments", json=BODY, headers={"Idempotency-Key": "key-of-the-dead"})
        assert r.status_code == 201
        assert r.json()["id"] == "pay_crashed"
        assert r.json()["status"] == "succeeded"
        again = http.post("/v1/payments", json=BODY, headers={"Idempotency-Key": "key-of-the-dead"})
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == "pay_crashed"
    with server.sandbox() as psp:
        intents = psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"]
        assert [pi["metadata"]["paymesh_payment_id"] for pi in intents if pi["amount"] == 3141] == [
            "pay_crashed"
        ]


def test_a_claim_still_within_its_lease_is_409(server: Server) -> None:
    leave_a_crashed_request(server, "key-in-flight", lease_left=timedelta(seconds=30))
    with server.client() as http:
        r = http.post("/v1/payments", json=BODY, headers={"Idempotency-Key": "key-in-flight"})
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "idempotency_key_in_use"
        # (recovery may drive it meanwhile; what matters is that no second one exists)
        listed = http.get("/v1/payments", params={"customer_id": "cus_crash"}).json()["data"]
        assert [p["id"] for p in listed] == ["pay_crashed"]


def test_a_lost_psp_answer_leaves_pending_and_a_retry_learns_the_truth(tmp_path: Path) -> None:
    from tests.integration.conftest import start

    for server in start(tmp_path, psp_timeout=0.5):
        with server.sandbox() as psp:
            # Stripe charges, then its answer never arrives in time.
            psp.put("/_config", json={"timeout_rate": 1.0, "timeout_hold_ms": 3000})
        with server.client() as http:
            first = http.post("/v1/payments", json=BODY, headers={"Idempotency-Key": "lost"})
            assert first.status_code == 201
            assert first.json()["status"] == "pending"
        with server.sandbox() as psp:
            psp.put("/_config", json={"timeout_rate": 0.0})
        with server.client() as http:
            retry = http.post("/v1/payments", json=BODY, headers={"Idempotency-Key": "lost"})
            assert retry.status_code == 201
            assert retry.json()["id"] == first.json()["id"]
            assert retry.json()["status"] == "succeeded"
        with server.sandbox() as psp:
            intents = psp.get("/v1/payment_intents", params={"limit": 100}).json()["data"]
            assert [pi["amount"] for pi in intents].count(3141) == 1
